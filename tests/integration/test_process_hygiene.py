"""No FFmpeg outlives its server: not after SIGTERM, not after SIGKILL."""

from __future__ import annotations

import signal

import pytest

from tests.support.camera import RtspCamera
from tests.support.server import CamgateServer, ffmpeg_pids, pids_connected_to, wait_for

pytestmark = pytest.mark.integration


def start_two(server: CamgateServer, camera: RtspCamera) -> list[int]:
    for camera_id in ("one", "two"):
        reply = server.service(cameraId=camera_id, rtspUrl=camera.url, action="start")
        assert reply.status_code == 200
    pids = [server.wait_state(c, {"running"}, 30)["pid"] for c in ("one", "two")]
    assert server.process is not None
    assert sorted(pids) == sorted(ffmpeg_pids(server.process.pid))
    return pids


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigkill_of_the_server_takes_every_ffmpeg_with_it(
    server: CamgateServer, camera: RtspCamera
) -> None:
    pids = start_two(server, camera)
    server.stop(signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in pids), 10, "ffmpeg children to die")
    assert not pids_connected_to(camera.port)  # no orphan still pulls the camera


def test_sigterm_stops_children_before_the_server_exits(
    server: CamgateServer, camera: RtspCamera
) -> None:
    pids = start_two(server, camera)
    code = server.stop(signal.SIGTERM)
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    assert not any(alive(pid) for pid in pids)
    log = server.log()
    assert "shutting down: stopping 2 streams" in log and "shutdown complete" in log
