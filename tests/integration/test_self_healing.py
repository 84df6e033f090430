"""Self-healing: streams come back by themselves after FFmpeg, the camera or the server dies,
and accepted changes survive a crash. Every test runs real processes with short timeouts.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.camera import RtspCamera, SilentRtspServer
from tests.support.events import EventFeed
from tests.support.ports import free_port, wait_until_bindable
from tests.support.server import CamgateServer, ffmpeg_pids, pids_connected_to, wait_for

pytestmark = pytest.mark.integration

MakeServer = Callable[..., CamgateServer]

RTSP_TIMEOUT_S = 2
STALL_TIMEOUT_S = 3
WATCHDOG_RTSP_TIMEOUT_S = 10
STOP_TIMEOUT_S = 2
MARGIN_S = 4
# Small delays keep every test short; the supervisor logic is the same as with the defaults.
FAST = {
    "RESTART_DELAY_MIN": "0.5",
    "RESTART_DELAY_MAX": "2",
    "RTSP_TIMEOUT": str(RTSP_TIMEOUT_S),
    "STALL_TIMEOUT": str(STALL_TIMEOUT_S),
    "STOP_TIMEOUT": str(STOP_TIMEOUT_S),
}
RUNNING_TIMEOUT_S = 30
SERVE_EXIT_TIMEOUT_S = 30


# ----- helpers ---------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def server_pid(server: CamgateServer) -> int:
    assert server.process is not None
    return server.process.pid


def start(server: CamgateServer, camera_id: str, url: str) -> None:
    reply = server.service(cameraId=camera_id, rtspUrl=url, action="start")
    assert reply.status_code == 200, reply.text


def media_window(server: CamgateServer, camera_id: str) -> tuple[int, int] | None:
    """(media sequence, msn of the last listed segment) of the LL playlist, None if unserved."""
    reply = server.client.get(f"/hls/{camera_id}/index.m3u8")
    if reply.status_code != 200:
        return None
    found = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", reply.text)
    assert found is not None, reply.text
    numbers = [int(n) for n in re.findall(r"^(?:\w+/)?seg-(\d+)\.m4s$", reply.text, re.M)]
    first = int(found.group(1))
    return first, max(numbers, default=first)


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def run_serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m camgate serve` as an operator runs it; it is expected to exit by itself."""
    full_env = {**os.environ, "CAMGATE_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-m", "camgate", "serve", "--port", str(free_port())],
        env=full_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SERVE_EXIT_TIMEOUT_S,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("camgate:")]


# ----- 1. FFmpeg killed -----------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_killed_ffmpeg_comes_back_by_itself_and_the_playlist_continues(
    make_server: MakeServer, camera: RtspCamera
) -> None:
    server = make_server(**FAST)
    start(server, "cam", camera.url)
    before = server.wait_state("cam", {"running"}, RUNNING_TIMEOUT_S)
    window = wait_for(lambda: media_window(server, "cam"), 15, "an LL playlist")
    assert window is not None
    sequences = [window[0]]
    last_msn_before = window[1]

    os.kill(before["pid"], signal.SIGKILL)

    def recovered() -> dict[str, Any] | None:
        seen = media_window(server, "cam")
        if seen is not None:
            sequences.append(seen[0])
        status = server.status("cam")
        new_run = status["state"] == "running" and status["pid"] not in (None, before["pid"])
        return status if new_run and seen is not None and seen[1] > last_msn_before else None

    # First retry after RESTART_DELAY_MIN (±20 %), then a probe and the first keyframe.
    after = wait_for(recovered, 20, "a new ffmpeg serving new segments", interval_s=0.2)
    assert after is not None
    assert after["restartCount"] == before["restartCount"] + 1
    assert not alive(before["pid"])
    assert ffmpeg_pids(server_pid(server), "cam") == [after["pid"]]
    assert pids_connected_to(camera.port) == [after["pid"]]
    assert sequences == sorted(sequences), f"media sequence went back: {sequences}"


# ----- 2. camera down for a while -------------------------------------------------------------
CAMERA_DOWN_S = 8  # with RESTART_DELAY_MAX=2 the delay is capped after ~3 s: several retries


@pytest.mark.timeout(90)
def test_camera_down_then_back_recovers_and_status_shows_the_backoff(
    make_server: MakeServer, camera: RtspCamera
) -> None:
    server = make_server(**FAST)
    start(server, "cam", camera.url)
    server.wait_state("cam", {"running"}, RUNNING_TIMEOUT_S)

    camera.stop()
    observed: list[tuple[float, dict[str, Any]]] = []  # (wall clock, status)
    down_until = time.monotonic() + CAMERA_DOWN_S
    counts: list[tuple[int, int]] = []  # (activeCount, runningCount) while in backoff
    while time.monotonic() < down_until:
        observed.append((time.time(), server.status("cam")))
        listing = server.client.get("/api/cameras").json()["data"]
        if listing["streams"][0]["state"] == "backoff":
            counts.append((listing["activeCount"], listing["runningCount"]))
        time.sleep(0.25)
    # A stream that waits to retry keeps its slot but does not count as running.
    assert counts and all(pair == (1, 0) for pair in counts), counts
    wait_until_bindable(camera.port)
    camera.start()

    recovered = server.wait_state("cam", {"running"}, RUNNING_TIMEOUT_S)
    assert recovered["nextRetryAt"] is None
    backoffs = [(at, s) for at, s in observed if s["state"] == "backoff"]
    assert backoffs, f"never in backoff: {[s['state'] for _, s in observed]}"
    assert any(s["reason"] == "unreachable" for _, s in backoffs), [s for _, s in backoffs]
    longest_delay_s = float(FAST["RESTART_DELAY_MAX"]) * 1.2
    for at, status in backoffs:  # the next retry is announced, and soon
        retry_in_s = timestamp(status["nextRetryAt"]) - at
        assert -0.5 < retry_in_s <= longest_delay_s + 0.5, status
    attempts = [s["attempt"] for _, s in observed]
    assert attempts == sorted(attempts), f"attempt went back while down: {attempts}"
    assert max(attempts) >= 3, f"too few retries in {CAMERA_DOWN_S}s: {attempts}"
    assert recovered["restartCount"] >= max(attempts)


# ----- 3. camera that accepts and says nothing ------------------------------------------------
@pytest.mark.timeout(60)
def test_silent_camera_ends_in_a_timeout_instead_of_hanging(make_server: MakeServer) -> None:
    server = make_server(**FAST)
    with SilentRtspServer(port=free_port()) as silent:
        start(server, "mute", silent.url)
        # FFmpeg's socket timeout ends it; the supervisor's own backstop (RTSP_TIMEOUT + 5 s)
        # must not be what answers.
        bound_s = RTSP_TIMEOUT_S + MARGIN_S
        status = wait_for(
            lambda: (s := server.status("mute"))["reason"] and s, bound_s, "a failure reason"
        )
        assert status["reason"] == "timeout", (status["reason"], status["lastError"])
        assert status["state"] in {"backoff", "starting"}
        assert status["attempt"] >= 1
        # Still supervised: the next attempt is scheduled, nothing hangs.
        server.wait_state("mute", {"backoff"}, bound_s)


@pytest.mark.timeout(90)
def test_paused_camera_trips_the_watchdog_and_resume_recovers(
    make_server: MakeServer, camera: RtspCamera
) -> None:
    # FFmpeg's own socket timeout must be longer than the watchdog's, or FFmpeg gives up first
    # (reason timeout): with the defaults (10 s < 15 s) a frozen camera never reaches the watchdog.
    server = make_server(**{**FAST, "RTSP_TIMEOUT": str(WATCHDOG_RTSP_TIMEOUT_S)})
    start(server, "cam", camera.url)
    running = server.wait_state("cam", {"running"}, RUNNING_TIMEOUT_S)

    with EventFeed(server) as events:
        paused_at = time.monotonic()
        camera.pause()
        stalled = events.wait("stalled", "cam", STALL_TIMEOUT_S + MARGIN_S)
        took_s = time.monotonic() - paused_at
        assert took_s <= STALL_TIMEOUT_S + MARGIN_S
        assert stalled["data"]["silentSeconds"] >= STALL_TIMEOUT_S
        # The failure is recorded once FFmpeg has been stopped (up to STOP_TIMEOUT later).
        restarting = events.wait("restarting", "cam", STOP_TIMEOUT_S + MARGIN_S)
        assert restarting["data"]["reason"] == "stalled", restarting
        status = server.status("cam")
        assert status["reason"] == "stalled", status
        assert status["state"] in {"backoff", "starting"}

        camera.resume()
        events.wait("ready", "cam", RUNNING_TIMEOUT_S)
    after = server.wait_state("cam", {"running"}, 5)
    assert after["pid"] != running["pid"]
    # Recovered: no current reason; the last error stays as history.
    assert after["reason"] is None and "stalled" in after["lastError"], after
    assert ffmpeg_pids(server_pid(server), "cam") == [after["pid"]]
    assert pids_connected_to(camera.port) == [after["pid"]]


# ----- 4. wrong credentials -------------------------------------------------------------------
AUTH_DELAY_MAX_S = 1.5


@pytest.mark.timeout(60)
def test_wrong_credentials_say_auth_failed_and_wait_the_longest_delay_at_once(
    make_server: MakeServer,
) -> None:
    # Cameras lock an account after a few bad logins: no quick retries, from the first failure.
    slow = {"RESTART_DELAY_MIN": "0.2", "RESTART_DELAY_MAX": str(AUTH_DELAY_MAX_S)}
    server = make_server(**{**FAST, **slow})
    with RtspCamera(port=free_port(), user="viewer", password="right-pass") as cam:
        with EventFeed(server) as events:
            start(server, "locked", cam.url_with_credentials("viewer", "wrong-pass"))
            for _ in range(3):
                events.wait("exited", "locked", 15)
            restarts = events.of("restarting", "locked")
            exits = events.of("exited", "locked")
        status = server.status("locked")
    assert status["reason"] == "auth failed", status
    assert all(e["data"]["reason"] == "auth failed" for e in exits)
    delays = [e["data"]["delay"] for e in restarts]
    shortest_s = 0.8 * AUTH_DELAY_MAX_S - 0.01  # the delay's jitter only shortens it, by <= 20 %
    assert len(delays) >= 2 and all(shortest_s <= d <= AUTH_DELAY_MAX_S for d in delays), delays
    times = [timestamp(e["time"]) for e in exits]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(gap >= shortest_s for gap in gaps), f"a quick retry after a bad login: {gaps}"
    assert status["attempt"] >= 3


# ----- 5. server killed with streams running --------------------------------------------------
@pytest.mark.timeout(90)
def test_server_sigkill_then_restart_brings_back_every_stream_and_no_orphan(
    make_server: MakeServer, camera: RtspCamera, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared-data"
    ids = ["a", "b", "c", "d"]
    first = make_server(data_dir, **FAST)
    for camera_id in ids:
        start(first, camera_id, camera.url)
    old_pids = [first.wait_state(c, {"running"}, RUNNING_TIMEOUT_S)["pid"] for c in ids]

    first.stop(signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in old_pids), 10, "the first run's ffmpeg to die")

    second = make_server(data_dir, **FAST)
    statuses = [second.wait_state(c, {"running"}, RUNNING_TIMEOUT_S) for c in ids]
    new_pids = [s["pid"] for s in statuses]
    assert sorted(s["cameraId"] for s in statuses) == ids
    assert not set(new_pids) & set(old_pids)
    streaming = [pid for c in ids for pid in ffmpeg_pids(server_pid(second), c)]
    assert sorted(streaming) == sorted(new_pids)
    assert sorted(pids_connected_to(camera.port)) == sorted(new_pids)  # no orphan pulls it
    assert not any(alive(pid) for pid in old_pids)


# ----- 6. durable state -----------------------------------------------------------------------
@pytest.mark.timeout(90)
def test_accepted_changes_survive_sigkill_and_stopped_stays_stopped(
    make_server: MakeServer, camera: RtspCamera, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared-data"
    first = make_server(data_dir, **FAST)
    body = {"rtspUrl": camera.url}
    assert first.client.put("/api/cameras/parked", json=body).status_code == 200
    first.wait_state("parked", {"running"}, RUNNING_TIMEOUT_S)
    assert first.client.post("/api/cameras/parked/stop").status_code == 200

    reply = first.client.put("/api/cameras/fresh", json=body)
    first.stop(signal.SIGKILL)
    assert reply.status_code == 200, reply.text

    second = make_server(data_dir, **FAST)
    fresh = second.client.get("/api/cameras/fresh")
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["data"]["rtspUrl"] == camera.url
    second.wait_state("fresh", {"running"}, RUNNING_TIMEOUT_S)
    parked = second.client.get("/api/cameras/parked")
    assert parked.status_code == 200, parked.text
    assert parked.json()["data"]["state"] == "stopped", parked.json()["data"]
    assert parked.json()["data"]["pid"] is None
    fresh_pids = ffmpeg_pids(server_pid(second), "fresh")
    assert len(fresh_pids) == 1 and not ffmpeg_pids(server_pid(second), "parked")
    assert pids_connected_to(camera.port) == fresh_pids  # only "fresh" pulls the camera


# ----- 7. the YAML camera file and start-up errors ---------------------------------------------
@pytest.mark.timeout(60)
def test_declared_camera_runs_at_boot_and_can_be_stopped(
    make_server: MakeServer, camera: RtspCamera, tmp_path: Path
) -> None:
    config = tmp_path / "cameras.yml"
    config.write_text(f"cameras:\n  yard:\n    url: {camera.url}\n    overrides: {{audio: none}}\n")
    server = make_server(CAMGATE_CONFIG=str(config), **FAST)
    status = server.wait_state("yard", {"running"}, RUNNING_TIMEOUT_S)
    assert status["overrides"] == {"audio": "none"}

    reply = server.client.post("/api/cameras/yard/stop")
    assert reply.status_code == 200, reply.text
    assert server.status("yard")["state"] == "stopped"
    wait_for(lambda: not ffmpeg_pids(server_pid(server), "yard"), 10, "ffmpeg to exit")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("entry", "line", "field"),
    [
        (
            "  yard:\n    url: rtsp://127.0.0.1:1/cam\n    enabled: maybe\n",
            4,
            "cameras.yard.enabled",
        ),
        ("  yard:\n    url: rtsp://127.0.0.1:1/cam\n    colour: red\n", 4, "cameras.yard.colour"),
        ("  yard:\n    url: http://127.0.0.1:1/cam\n", 3, "cameras.yard.url"),
    ],
    ids=["enabled-not-a-boolean", "unknown-field", "url-not-rtsp"],
)
def test_bad_camera_file_stops_start_up_naming_file_line_and_field(
    tmp_path: Path, entry: str, line: int, field: str
) -> None:
    config = tmp_path / "cameras.yml"
    config.write_text(f"cameras:\n{entry}")
    result = run_serve(tmp_path, CAMGATE_CONFIG=str(config))
    assert result.returncode != 0
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert f"{config}:{line}:" in errors[0] and field in errors[0], errors[0]


@pytest.mark.timeout(60)
def test_corrupt_database_stops_start_up_instead_of_starting_empty(tmp_path: Path) -> None:
    database = tmp_path / "data" / "camgate.db"
    database.parent.mkdir()
    garbage = b"not a database, just garbage \x00\xff\x13" * 200
    database.write_bytes(garbage)
    result = run_serve(tmp_path)
    assert result.returncode != 0
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert str(database) in errors[0] and "database" in errors[0], errors[0]
    assert database.read_bytes() == garbage  # left as it was for the operator to inspect


# ----- 8. health ------------------------------------------------------------------------------
@pytest.mark.timeout(30)
def test_health_and_readiness(server: CamgateServer) -> None:
    assert server.client.get("/healthz").status_code == 200
    ready = server.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": True, "manager": True}


# ----- 9. giving up ---------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_max_attempts_ends_in_failed_with_a_failed_event(make_server: MakeServer) -> None:
    server = make_server(**{**FAST, "RESTART_MAX_ATTEMPTS": "2"})
    url = f"rtsp://127.0.0.1:{free_port()}/nothing"
    with EventFeed(server) as events:
        start(server, "dead", url)
        failed = events.wait("failed", "dead", 20)
        assert len(events.of("exited", "dead")) == 2
    assert failed["data"] == {"attempts": 2, "reason": "unreachable"}
    status = server.status("dead")
    assert status["state"] == "failed"
    assert status["attempt"] == 2
    assert status["reason"] == "unreachable"
    assert status["nextRetryAt"] is None
    time.sleep(1.5)  # no further attempt after giving up
    assert server.status("dead")["attempt"] == 2


@pytest.mark.timeout(60)
def test_max_attempts_reached_by_a_running_stream_ends_in_failed(
    make_server: MakeServer, camera: RtspCamera
) -> None:
    server = make_server(**{**FAST, "RESTART_MAX_ATTEMPTS": "1", "HLS_BLOCK_TIMEOUT": "20"})
    start(server, "cam", camera.url)
    running = server.wait_state("cam", {"running"}, RUNNING_TIMEOUT_S)
    playlist = server.client.get("/hls/cam/index.m3u8").text
    first_msn = int(playlist.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0])
    # The furthest a player may ask for: two beyond the last segment listed, which is the open
    # one when parts follow the last complete segment (RFC 8216bis 6.2.5.2).
    open_segment = "#EXT-X-PART:" in playlist.rsplit("#EXTINF", 1)[-1]
    ahead = first_msn + playlist.count("#EXTINF") - 1 + int(open_segment) + 2
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # A player blocked on a part that will never come, because the stream is about to fail.
        blocked = pool.submit(
            server.client.get, "/hls/cam/index.m3u8", params={"_HLS_msn": ahead, "_HLS_part": 0}
        )
        wait_for(lambda: server.status("cam")["hls"]["consumers"] >= 1, 5, "the blocked request")
        os.kill(running["pid"], signal.SIGKILL)
        killed_at = time.monotonic()

        status = server.wait_state("cam", {"failed"}, STOP_TIMEOUT_S + MARGIN_S)
        answer = blocked.result(timeout=20)
        # It is let go when the stream fails, not at the end of its 20 s wait.
        assert time.monotonic() - killed_at < STOP_TIMEOUT_S + MARGIN_S
        assert answer.status_code in (404, 503), answer.text
    assert status["attempt"] == 1 and status["pid"] is None
    assert status["runningSince"] is None and status["uptimeSeconds"] == 0
    assert not ffmpeg_pids(server_pid(server), "cam")
    stop = server.service(cameraId="cam", action="stop")
    assert stop.status_code == 200, stop.text
