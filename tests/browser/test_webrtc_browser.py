"""A viewer in headless Chromium watches a camera over WebRTC (WHEP) on camgate's player page.

The page is ``/watch/<id>?mode=webrtc``: its video must move, Chromium's own WebRTC statistics
must show H.264 pictures decoded, and the picture must be close behind the camera's timecode.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium_path, launch_chromium, sample_latency, watch
from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(chromium_path()), reason="no Chromium to run"),
]

CAMERA_ID = "webrtc-browser"
WATCH_S = 6.0
MIN_ADVANCE_S = 4.5
LATENCY_SAMPLE_S = 3.0
LATENCY_P50_MAX_S = 0.6  # the target is 0.1 s; CI machines are noisy


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), gop_s=2.0, timecode=True) as cam:
        yield cam


@pytest.fixture
def server(camera: RtspCamera, tmp_path: Path) -> Iterator[CamgateServer]:
    with CamgateServer(free_port(), tmp_path / "data") as server:
        reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
        assert reply.status_code == 200, reply.text
        server.wait_state(CAMERA_ID, {"running"}, 40)
        yield server


async def test_chromium_plays_the_camera_over_webrtc_close_behind_live(
    server: CamgateServer,
) -> None:
    async with launch_chromium() as browser:
        page = await browser.new_page()
        report = await watch(page, f"{server.base_url}/watch/{CAMERA_ID}?mode=webrtc", WATCH_S)
        assert report.started, report.errors
        assert report.advanced_s >= MIN_ADVANCE_S, report.samples
        assert report.player_stats is not None
        assert report.player_stats["mode"] == "webrtc", report.player_stats
        webrtc = report.player_stats["webrtc"]
        assert webrtc["codec"] == "video/H264" and webrtc["framesDecoded"] > 50, webrtc
        assert "WebRTC" in await page.locator("#state").inner_text()

        latencies = await sample_latency(page, LATENCY_SAMPLE_S)
        assert latencies, "no timecode read from the presented frames"
        assert statistics.median(latencies) <= LATENCY_P50_MAX_S, latencies
        status = server.status(CAMERA_ID)["outputs"]["webrtc"]
        assert status["viewers"] == 1

        await page.close()  # the page's DELETE (or the dropped connection) ends the session
        await _wait_no_viewers(server)


async def _wait_no_viewers(server: CamgateServer) -> None:
    async with asyncio.timeout(30):
        while server.status(CAMERA_ID)["outputs"]["webrtc"]["viewers"]:
            await asyncio.sleep(0.2)
