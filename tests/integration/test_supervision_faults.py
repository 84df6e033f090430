"""Supervision never gives up by accident: an FFmpeg that cannot be started, or that writes
garbage on stderr, is a failed attempt with backoff; only RESTART_MAX_ATTEMPTS ends a stream.
Real server, real camera (or a stand-in FFmpeg), short delays."""

from __future__ import annotations

import os
import resource
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.media import wait_playlist
from tests.support.camera import RtspCamera
from tests.support.events import EventFeed
from tests.support.server import CamgateServer, wait_for

pytestmark = pytest.mark.integration

MakeServer = Callable[..., CamgateServer]

DELAY_MAX_S = 1.0
FAST = {
    "RESTART_DELAY_MIN": "0.2",
    "RESTART_DELAY_MAX": str(DELAY_MAX_S),
    "RTSP_TIMEOUT": "2",
    "STALL_TIMEOUT": "3",
    "STOP_TIMEOUT": "2",
}
RUNNING_TIMEOUT_S = 30
# More than asyncio's 64 KiB line limit, which is where FFmpeg's stderr used to break the reader.
LONG_LINE_BYTES = 70_000


def server_pid(server: CamgateServer) -> int:
    assert server.process is not None
    return server.process.pid


def limit_leaving_free(pid: int, free: int) -> int:
    """The RLIMIT_NOFILE value under which `pid` can open only `free` more descriptors
    (the limit bounds descriptor numbers, and new ones take the lowest free number)."""
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    holes = 0
    number = 0
    while True:
        if number not in used:
            if holes == free:
                return number
            holes += 1
        number += 1


@contextmanager
def descriptor_limit(pid: int, soft: int) -> Iterator[None]:
    """Lower `pid`'s soft RLIMIT_NOFILE to `soft` (like `prlimit --nofile`); restored on exit."""
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old)


def watch_states(server: CamgateServer, camera_id: str, seen: list[str]) -> dict[str, Any]:
    status = server.status(camera_id)
    seen.append(status["state"])
    assert status["state"] != "failed", status
    return status


@pytest.mark.timeout(90)
def test_a_stream_that_cannot_spawn_ffmpeg_waits_in_backoff_and_comes_back(
    make_server: MakeServer, camera: RtspCamera
) -> None:
    server = make_server(**FAST)
    assert server.service(cameraId="cam", rtspUrl=camera.url, action="start").status_code == 200
    running = server.wait_state("cam", {"running"}, RUNNING_TIMEOUT_S)
    pid = server_pid(server)
    seen: list[str] = []

    # One descriptor to spare: enough for an HTTP connection, far too few for FFmpeg's pipes.
    with descriptor_limit(pid, limit_leaving_free(pid, free=1)):
        os.kill(running["pid"], signal.SIGKILL)

        def spawn_failed_twice() -> dict[str, Any] | None:
            status = watch_states(server, "cam", seen)
            spawn_failed = status["reason"] == "spawn failed" and status["attempt"] >= 2
            return status if spawn_failed else None

        status = wait_for(spawn_failed_twice, 20, "retries that cannot start ffmpeg")
        assert "file descriptors" in status["lastError"], status
        assert status["state"] in {"backoff", "starting"} and status["pid"] is None
        assert server.client.get("/healthz").status_code == 200

    recovered = wait_for(
        lambda: (s := watch_states(server, "cam", seen))["state"] == "running" and s,
        RUNNING_TIMEOUT_S,
        "the stream to run again once descriptors are available",
    )
    assert recovered["pid"] not in (None, running["pid"])
    assert "#EXT-X-MAP" in wait_playlist(server, "cam")
    assert "backoff" in seen and "failed" not in seen


FAKE_FFMPEG = """#!{python}
# Stands in for FFmpeg: describes a camera when probing, then streams nothing but one absurdly
# long stderr line followed by an ordinary one, and fails.
import sys

sys.stdin.buffer.read()
if "pipe:1" not in sys.argv:
    sys.stderr.write("Input #0, concat, from 'pipe:0':\\n")
    sys.stderr.write("  Stream #0:0: Video: h264, yuv420p, 640x360, 25 fps, 25 tbr, 90k tbn\\n")
    sys.exit(1)
sys.stderr.write("x" * {long_line_bytes} + "\\n")
sys.stderr.write("Conversion failed!\\n")
sys.stderr.flush()
sys.exit(1)
"""


@pytest.mark.timeout(60)
def test_an_ffmpeg_writing_a_stderr_line_over_64_kib_is_retried_not_failed(
    make_server: MakeServer, tmp_path: Path
) -> None:
    fake = tmp_path / "fake-ffmpeg"
    fake.write_text(FAKE_FFMPEG.format(python=sys.executable, long_line_bytes=LONG_LINE_BYTES))
    fake.chmod(0o700)
    server = make_server(FFMPEG_PATH=str(fake), **FAST)
    url = "rtsp://127.0.0.1:9/cam"  # never dialled: the stand-in does not connect
    assert server.service(cameraId="noisy", rtspUrl=url, action="start").status_code == 200
    seen: list[str] = []

    def retried_three_times() -> dict[str, Any] | None:
        status = watch_states(server, "noisy", seen)
        return status if status["attempt"] >= 3 else None

    status = wait_for(retried_three_times, 20, "three attempts")
    # The reader got past the long line: FFmpeg's last words are the reason shown.
    assert status["lastError"] == "unknown: Conversion failed!", status
    assert status["state"] in {"backoff", "starting"}
    assert server.client.get("/healthz").status_code == 200
    assert "ffmpeg: [...]" in server.log()  # the long line, cut, in the log


@pytest.mark.timeout(60)
def test_a_wrong_camera_path_waits_the_longest_delay_from_the_first_failure(
    make_server: MakeServer, camera: RtspCamera
) -> None:
    server = make_server(**FAST)
    wrong_path = f"rtsp://127.0.0.1:{camera.port}/no-such-path"
    with EventFeed(server) as events:
        assert (
            server.service(cameraId="typo", rtspUrl=wrong_path, action="start").status_code == 200
        )
        for _ in range(2):
            events.wait("restarting", "typo", 15)
        restarts = events.of("restarting", "typo")
    assert all(r["data"]["reason"] == "not found" for r in restarts), restarts
    # Without the rule, the first delay would be about RESTART_DELAY_MIN (0.2 s).
    assert all(r["data"]["delay"] >= 0.8 * DELAY_MAX_S - 0.01 for r in restarts), restarts
