"""On-demand cameras against a real camera and server: not pulled while nobody watches, started
by the first playlist request (which waits and gets a playable playlist), dropped again after
ON_DEMAND_IDLE_S without viewers, and woken again by the next one."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.support.camera import RtspCamera
from tests.support.events import EventFeed
from tests.support.server import CamgateServer, ffmpeg_pids, wait_for

pytestmark = pytest.mark.integration

IDLE_S = 2
# A plain-HLS viewer counts for three target durations (2 s) after its last request.
VIEWER_MEMORY_S = 6


def server_pid(server: CamgateServer) -> int:
    assert server.process is not None
    return server.process.pid


def stays(condition: Callable[[], bool], seconds: float) -> bool:
    """`condition` holds every time it is checked during `seconds` (checked every 0.2 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.2)
    return True


def test_on_demand_camera_is_pulled_only_while_watched(
    make_server: Callable[..., CamgateServer], camera: RtspCamera
) -> None:
    server = make_server(ON_DEMAND_IDLE_S=str(IDLE_S))
    api = server.client
    created = api.put("/api/cameras/lobby", json={"rtspUrl": camera.url, "onDemand": True})
    assert created.status_code == 200, created.text
    status = created.json()["data"]
    assert status["state"] == "idle" and status["onDemand"] is True
    assert api.get("/api/cameras").json()["data"]["activeCount"] == 0  # holds no stream slot
    assert stays(lambda: not ffmpeg_pids(server_pid(server), "lobby"), 2.0)

    with EventFeed(server) as events:
        started = time.monotonic()
        reply = api.get("/hls/lobby/index.m3u8", timeout=30)
        first_playlist_s = time.monotonic() - started
        assert reply.status_code == 200, reply.text
        assert "#EXT-X-PART:" in reply.text and "#EXT-X-MAP:" in reply.text
        assert first_playlist_s < 15
        assert ffmpeg_pids(server_pid(server), "lobby")
        running = server.status("lobby")
        assert running["state"] == "running" and running["consumers"] >= 1

        # Nobody asks any more: back to idle, FFmpeg gone; each change was one event carrying
        # the new status.
        states: list[str] = []
        while not states or states[-1] != "idle":
            event = events.wait("state", "lobby", IDLE_S + VIEWER_MEMORY_S + 10)
            assert event["data"]["status"]["state"] == event["data"]["state"]
            states.append(event["data"]["state"])
        assert states == ["starting", "running", "idle"], states
        wait_for(lambda: not ffmpeg_pids(server_pid(server), "lobby"), 10, "FFmpeg to exit")
        idle = server.status("lobby")
        assert idle["runningSince"] is None and idle["uptimeSeconds"] == 0

    # The next viewer wakes it again.
    again = api.get("/hls/lobby/index.m3u8", timeout=30)
    assert again.status_code == 200 and "#EXT-X-PART:" in again.text
    assert ffmpeg_pids(server_pid(server), "lobby")

    # Stopped means stopped, not idle: a viewer does not wake it.
    assert api.post("/api/cameras/lobby/stop").json()["data"]["state"] == "stopped"
    assert api.get("/hls/lobby/index.m3u8").status_code == 404
    assert not ffmpeg_pids(server_pid(server), "lobby")


def test_on_demand_camera_survives_a_restart_of_camgate(
    make_server: Callable[..., CamgateServer], camera: RtspCamera
) -> None:
    server = make_server()
    assert server.client.put(
        "/api/cameras/yard", json={"rtspUrl": camera.url, "onDemand": True}
    ).is_success
    server.stop()
    again = make_server(data_dir=server.data_dir)
    status = again.status("yard")
    assert status["state"] == "idle" and status["onDemand"] is True
    assert again.client.get("/hls/yard/index.m3u8", timeout=30).status_code == 200
