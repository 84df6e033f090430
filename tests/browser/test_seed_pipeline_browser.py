"""The browser harness, proven on the seed's pipeline: a viewer in Chromium sees it play.

The seed pipeline (FFmpeg re-encoding into MPEG-TS HLS, here with 1 s segments so the test is
short) is served by a local static server and played by camgate's player page with hls.js.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium_path, launch_chromium, sample_latency, watch
from tests.support.camera import RtspCamera
from tests.support.seed_pipeline import SeedPipeline, StaticServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(chromium_path()), reason="no Chromium to run"),
]

WATCH_S = 10.0
LATENCY_SAMPLE_S = 3.0


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    cam = RtspCamera(timecode=True, gop_s=2.0)
    cam.start()
    try:
        yield cam
    finally:
        cam.stop()


@pytest.fixture
def seed_site(camera: RtspCamera, tmp_path: Path) -> Iterator[tuple[SeedPipeline, StaticServer]]:
    with (
        SeedPipeline(camera.url, tmp_path, segment_s=1.0) as seed,
        StaticServer(seed.site_dir) as server,
    ):
        seed.wait_ready(timeout_s=30)
        yield seed, server


async def test_seed_pipeline_plays_smoothly_with_a_readable_timecode(
    seed_site: tuple[SeedPipeline, StaticServer],
) -> None:
    seed, server = seed_site

    async with launch_chromium() as browser:
        page = await browser.new_page()
        report = await watch(page, server.url + seed.watch_path, WATCH_S)
        latencies_s = await sample_latency(page, LATENCY_SAMPLE_S)

    assert report.started, report.errors
    assert report.advanced_s >= 0.8 * WATCH_S, report.samples
    assert report.stalls == [], report.samples
    assert [e for e in report.errors if e.startswith("pageerror")] == []
    assert report.player_stats is not None and report.player_stats["engine"] == "hlsjs"
    assert latencies_s, "no frame with a readable timecode"
    assert all(0 < s < 30 for s in latencies_s), latencies_s
