"""A viewer in headless Chromium watches a camera over WebRTC (WHEP) on camgate's player page.

The page is ``/watch/<id>?mode=webrtc``: its video must move, Chromium's own WebRTC statistics
must show H.264 pictures decoded and Opus audio received (the camera sends AAC), and the picture
must be close behind the camera's timecode.
A Chromium that may not use UDP (the policy a proxy-only network enforces) cannot connect over
WebRTC: the page must fall back to MSE within a few seconds and say so. One camera and one server
serve the module; the server puts every WebRTC session on one UDP port (``WEBRTC_PORTS`` with a
single port), as a firewall that opens one port needs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.browser import (
    CHROMIUM_ARGS,
    chromium_path,
    launch_chromium,
    sample_latency,
    watch,
)
from tests.support.camera import RtspCamera
from tests.support.ports import free_port, free_udp_range
from tests.support.server import CamgateServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(chromium_path()), reason="no Chromium to run"),
]

CAMERA_ID = "webrtc-browser"
WATCH_S = 5.0
MIN_ADVANCE_S = 3.5
LATENCY_SAMPLE_S = 3.0
LATENCY_P50_MAX_S = 0.6  # the target is 0.1 s; CI machines are noisy
SESSION_END_S = 5.0  # leaving the page DELETEs the session (no 15 s RTCP timeout)
# Chromium's own switch: WebRTC may use UDP only through a proxy, and there is none.
NO_UDP_ARGS = ["--webrtc-ip-handling-policy=disable_non_proxied_udp"]
FALLBACK_MAX_S = 10.0  # the player gives WebRTC 4 s, then MSE starts at once; noisy CI machines


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CamgateServer]:
    data_dir = tmp_path_factory.mktemp("webrtc-browser") / "data"
    with (
        RtspCamera(port=free_port(), gop_s=2.0, timecode=True, audio="aac") as camera,
        CamgateServer(free_port(), data_dir, {"WEBRTC_PORTS": str(free_udp_range(1)[0])}) as server,
    ):
        reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
        assert reply.status_code == 200, reply.text
        server.wait_state(CAMERA_ID, {"running"}, 40)
        yield server


@asynccontextmanager
async def chromium_without_udp() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS + NO_UDP_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


def webrtc_viewers(server: CamgateServer) -> int:
    viewers: int = server.status(CAMERA_ID)["outputs"]["webrtc"]["viewers"]
    return viewers


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
        assert webrtc["audioCodec"] == "audio/opus" and webrtc["audioSamplesReceived"] > 0, webrtc
        assert "WebRTC" in await page.locator("#state").inner_text()

        latencies = await sample_latency(page, LATENCY_SAMPLE_S)
        assert latencies, "no timecode read from the presented frames"
        assert statistics.median(latencies) <= LATENCY_P50_MAX_S, latencies
        assert webrtc_viewers(server) == 1

        await page.goto("about:blank")  # the viewer leaves: the page ends its session
        await _wait_no_viewers(server, SESSION_END_S)


async def test_without_udp_the_page_falls_back_to_mse_and_says_so(server: CamgateServer) -> None:
    async with chromium_without_udp() as browser:
        page = await browser.new_page()
        opened = time.monotonic()
        report = await watch(
            page, f"{server.base_url}/watch/{CAMERA_ID}?mode=webrtc", 1.0, start_timeout_s=15
        )
        assert report.started, report.errors
        assert time.monotonic() - opened - 1.0 <= FALLBACK_MAX_S
        assert report.player_stats is not None
        assert report.player_stats["mode"] == "mse", report.player_stats
        assert "MSE" in await page.locator("#state").inner_text()
        reasons = [e["detail"] for e in report.player_stats["errors"]]
        assert any("falling back to MSE" in reason for reason in reasons), reasons
        # The WebRTC attempt left no session behind on the server.
        await _wait_no_viewers(server, SESSION_END_S)


async def _wait_no_viewers(server: CamgateServer, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while webrtc_viewers(server):
            await asyncio.sleep(0.2)
