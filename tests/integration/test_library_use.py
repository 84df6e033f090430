"""camgate's service used as a library, without the web server, against a real camera."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from camgate.camera import Overrides
from camgate.config import Settings
from camgate.manager import StreamManager
from camgate.outputs.hls import LiveHls
from tests.support.camera import RtspCamera
from tests.support.server import ffmpeg_pids

pytestmark = pytest.mark.integration


async def wait_until(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_manager_streams_a_camera_and_publishes_events(
    camera: RtspCamera, tmp_path: Path
) -> None:
    manager = StreamManager(Settings(CAMGATE_DATA_DIR=str(tmp_path)))
    events: list[tuple[str, str | None]] = []
    manager.bus.subscribe(lambda event: events.append((event.type, event.camera_id)))
    try:
        stream = await manager.start("lib", camera.url)
        live = manager.sink("lib", "hls")
        assert isinstance(live, LiveHls)
        assert await live.wait_until_playable(30)
        playlist = live.playlist(True)
        assert playlist is not None and "#EXT-X-PART:" in playlist
        assert ("ready", "lib") in events
        assert stream.status().state == "running"
    finally:
        await manager.close()
    assert ("stopped", "lib") in events
    assert not ffmpeg_pids(os.getpid(), "lib")


async def test_reencode_override_changes_the_picture_size(
    camera: RtspCamera, tmp_path: Path
) -> None:
    manager = StreamManager(Settings(CAMGATE_DATA_DIR=str(tmp_path)))
    try:
        stream = await manager.start("small", camera.url, Overrides(resolution="320x180"))
        live = manager.sink("small", "hls")
        assert isinstance(live, LiveHls) and await live.wait_until_playable(30)
        await wait_until(lambda: stream.media.output_size, 10, "the init segment's size")
        status = stream.status().model_dump()
        assert status["transcoding"] is True
        assert status["codecs"]["outputSize"] == "320x180"
        assert (status["codecs"]["video"]["width"], status["codecs"]["video"]["height"]) == (
            640,
            360,
        )
        argv = Path(f"/proc/{stream.pid}/cmdline").read_bytes().split(b"\0")
        assert b"libx264" in argv and b"ultrafast" in argv and b"zerolatency" in argv
    finally:
        await manager.close()
