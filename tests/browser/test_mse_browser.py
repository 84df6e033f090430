"""Viewers in headless Chromium watch a camera over MSE: the player page and dashboard previews.

Each test runs its own timecode camera and camgate server. The watch page must play over the
WebSocket by default (the media arriving there, not over HLS), near live, and fall back to
LL-HLS by itself when the browser has no MSE or the WebSocket cannot get through.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Page, Request, WebSocket, WebSocketRoute, expect

from tests.support.browser import chromium_path, follow, launch_chromium, sample_latency, watch
from tests.support.camera import RtspCamera
from tests.support.live_edge import LiveEdge
from tests.support.ports import free_port
from tests.support.server import CamgateServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(chromium_path()), reason="no Chromium to run"),
]

CAMERA_ID = "mse-browser"
WATCH_PATH = f"/watch/{CAMERA_ID}"
WATCH_S = 10.0
MIN_ADVANCE_S = 8.0
LATENCY_SAMPLE_S = 4.0
LATENCY_P50_MAX_S = 1.0  # the target is 0.35 s (bench/latency); CI machines are noisy
FALLBACK_WATCH_S = 6.0
FALLBACK_MIN_ADVANCE_S = 4.0
PREVIEW_FOLLOW_S = 4.0
DEADLINE_MS = 30_000
SERVER_ENV = {"RESTART_DELAY_MIN": "0.5", "STALL_TIMEOUT": "5"}

_NO_MSE_JS = "delete window.MediaSource; delete window.ManagedMediaSource;"
# The page's default is WebRTC where the browser has it: these tests play a browser without it.
_NO_WEBRTC_JS = "delete window.RTCPeerConnection;"
_DASHBOARD_STATS_JS = "() => window.camgateDashboard.stats()"


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), gop_s=2.0, timecode=True) as cam:
        yield cam


@pytest.fixture
def server(camera: RtspCamera, tmp_path: Path) -> Iterator[CamgateServer]:
    """A camgate server already streaming the camera."""
    with CamgateServer(free_port(), tmp_path / "data", SERVER_ENV) as server:
        reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
        assert reply.status_code == 200, reply.text
        server.wait_state(CAMERA_ID, {"running"}, 40)
        yield server


@dataclass
class Traffic:
    """What a page fetched: media over WebSockets, and HTTP requests."""

    ws_bytes: int = 0
    ws_urls: list[str] = field(default_factory=list)
    http_urls: list[str] = field(default_factory=list)

    @property
    def hls_requests(self) -> list[str]:
        return [url for url in self.http_urls if "/hls/" in url]


def record_traffic(page: Page) -> Traffic:
    traffic = Traffic()

    def on_frame(payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            traffic.ws_bytes += len(payload)

    def on_socket(ws: WebSocket) -> None:
        traffic.ws_urls.append(ws.url)
        ws.on("framereceived", on_frame)

    def on_request(request: Request) -> None:
        traffic.http_urls.append(request.url)

    page.on("websocket", on_socket)
    page.on("request", on_request)
    return traffic


async def test_the_watch_page_plays_over_mse_near_live(server: CamgateServer) -> None:
    async with launch_chromium() as browser:
        page = await browser.new_page()
        await page.add_init_script(_NO_WEBRTC_JS)
        traffic = record_traffic(page)
        async with LiveEdge(server.base_url, f"/hls/{CAMERA_ID}/index.m3u8") as edge:
            report = await watch(page, server.base_url + WATCH_PATH, WATCH_S)
        latencies_s = await sample_latency(page, LATENCY_SAMPLE_S)
        await expect(page.locator("#state")).to_contain_text("MSE")

    assert report.started, report.errors
    assert report.advanced_s >= MIN_ADVANCE_S, report.samples
    # No stall while the camera's live edge moved on (tests/support/live_edge.py).
    _, unexplained = edge.source_stalls(report)
    assert unexplained == [], (report.stalls, edge.changes, report.player_stats)
    stats = report.player_stats
    assert stats is not None and (stats["mode"], stats["engine"]) == ("mse", "mse"), stats
    assert stats["mse"]["bytesReceived"] > 0 and stats["mse"]["firstFrameMs"] is not None
    assert traffic.ws_urls == [
        f"ws://127.0.0.1:{server.port}/ws/{CAMERA_ID}" + signed_query(traffic)
    ]
    assert traffic.ws_bytes >= stats["mse"]["bytesReceived"] > 100_000
    assert traffic.hls_requests == []
    assert latencies_s, "no frame with a readable timecode"
    assert statistics.median(latencies_s) < LATENCY_P50_MAX_S, sorted(latencies_s)
    status = server.status(CAMERA_ID)
    assert status["outputs"]["mse"]["clients"] == 0  # the page is closed


def signed_query(traffic: Traffic) -> str:
    """The signed query the page got from the viewer-url API (the server runs without tokens)."""
    match = re.search(r"\?exp=\d+&sig=[\w-]+$", traffic.ws_urls[0]) if traffic.ws_urls else None
    return match.group(0) if match else ""


async def test_without_mse_the_watch_page_plays_ll_hls(server: CamgateServer) -> None:
    async with launch_chromium() as browser:
        page = await browser.new_page()
        await page.add_init_script(_NO_MSE_JS + _NO_WEBRTC_JS)
        traffic = record_traffic(page)
        report = await watch(page, server.base_url + WATCH_PATH, FALLBACK_WATCH_S)

    assert report.started, report.errors
    assert report.advanced_s >= FALLBACK_MIN_ADVANCE_S, report.samples
    assert report.player_stats is not None and report.player_stats["mode"] == "ll"
    assert traffic.ws_urls == [] and traffic.hls_requests


async def test_when_the_websocket_fails_the_watch_page_falls_back_to_ll_hls(
    server: CamgateServer,
) -> None:
    async def refuse(ws: WebSocketRoute) -> None:
        await ws.close(code=1011, reason="no WebSockets through this proxy")

    async with launch_chromium() as browser:
        page = await browser.new_page()
        await page.add_init_script(_NO_WEBRTC_JS)
        await page.route_web_socket(re.compile(r"/ws/"), refuse)
        report = await watch(page, server.base_url + WATCH_PATH, FALLBACK_WATCH_S)
        await expect(page.locator("#state")).to_contain_text("LL-HLS")

    assert report.started, report.errors
    assert report.advanced_s >= FALLBACK_MIN_ADVANCE_S, report.samples
    stats = report.player_stats
    assert stats is not None and (stats["mode"], stats["engine"]) == ("ll", "hlsjs"), stats
    assert any("falling back to LL-HLS" in error["detail"] for error in stats["errors"])


async def test_the_dashboard_preview_plays_over_mse(server: CamgateServer) -> None:
    async with launch_chromium() as browser:
        page = await browser.new_page()
        traffic = record_traffic(page)
        await page.goto(server.base_url + "/", wait_until="domcontentloaded")
        tile = f'article.cam[data-camera="{CAMERA_ID}"]'
        await expect(page.locator(f"{tile} .badge")).to_have_text("running", timeout=DEADLINE_MS)
        video = f"{tile} video"
        await page.wait_for_function(
            "(s) => document.querySelector(s).currentTime > 0", arg=video, timeout=DEADLINE_MS
        )
        report = await follow(page, PREVIEW_FOLLOW_S, video_selector=video)
        stats = await page.evaluate(_DASHBOARD_STATS_JS)

    assert report.advanced_s >= 0.5 * PREVIEW_FOLLOW_S, report.samples
    assert stats["previews"] == [CAMERA_ID] and stats["previewModes"] == {CAMERA_ID: "mse"}
    assert traffic.ws_bytes > 0 and traffic.hls_requests == []
