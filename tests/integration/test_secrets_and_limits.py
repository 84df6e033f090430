"""Camera credentials never leak and the camera limits hold, against the real server.

Every password here contains MARKER, so a leak of any part of it, raw or percent-encoded, shows
as MARKER in the text a person or client can see: API replies, events, metrics, both log
formats, the log file, `camgate probe` and the FFmpeg command lines in `ps`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.support.camera import RtspCamera
from tests.support.events import EventFeed
from tests.support.ports import free_port
from tests.support.server import CamgateServer, ffmpeg_cmdlines, wait_for

pytestmark = pytest.mark.integration

MakeServer = Callable[..., CamgateServer]

MARKER = "Zq7k"
USER = f"{MARKER}usr"
# One character that URL parsers treat specially per piece, and all of them together.
RIGHT_PASSWORD = f"{MARKER}@1:{MARKER}/2#{MARKER}?3%{MARKER}"
WRONG_PASSWORDS = {
    "@": f"{MARKER}@at",
    ":": f"{MARKER}:colon",
    "/": f"{MARKER}/slash",
    "#": f"{MARKER}#hash",
    "?": f"{MARKER}?query",
    "%": f"{MARKER}%percent",
}
AMBIGUOUS = ["@", "/", "#", "?", "%"]  # a raw ':' is plain RFC 3986 userinfo
FAST = {"RESTART_DELAY_MIN": "0.5", "RESTART_DELAY_MAX": "2", "RTSP_TIMEOUT": "3"}
RUNNING_TIMEOUT_S = 30
PROBE_TIMEOUT_S = 30


def raw_url(camera: RtspCamera, password: str) -> str:
    return f"rtsp://{USER}:{password}@127.0.0.1:{camera.port}{camera.path}"


def encoded_url(camera: RtspCamera, password: str) -> str:
    return camera.url_with_credentials(USER, password)


def assert_no_secret(channel: str, text: str) -> None:
    assert MARKER not in text, f"a credential leaked into {channel}: {text[:2000]}"


def probe(url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`camgate probe URL` as an operator runs it."""
    env = {**os.environ, "CAMGATE_DATA_DIR": str(data_dir), "RTSP_TIMEOUT": "3"}
    return subprocess.run(
        [sys.executable, "-m", "camgate", "probe", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
    )


def event(events: EventFeed, type_: str, camera_id: str) -> dict[str, object]:
    """The first such event, whether already read or still to come."""
    seen = events.of(type_, camera_id)
    return seen[0] if seen else events.wait(type_, camera_id, RUNNING_TIMEOUT_S)


# ----- ambiguous credentials are refused -------------------------------------------------------
@pytest.mark.timeout(90)
def test_raw_ambiguous_passwords_are_refused_everywhere_without_echoing_them(
    server: CamgateServer, tmp_path: Path
) -> None:
    camera_url = "rtsp://127.0.0.1:9/cam"
    api = server.client
    for char in AMBIGUOUS:
        url = camera_url.replace("//", f"//{USER}:{WRONG_PASSWORDS[char]}@")
        replies = [
            server.service(cameraId="raw", action="start", rtspUrl=url),
            api.put("/api/cameras/raw", json={"rtspUrl": url}),
        ]
        for reply in replies:
            assert reply.status_code == 400, (char, reply.text)
            message = reply.json()["error"]
            assert "rtspUrl" in message and "percent-encode" in message and "%40" in message
            assert_no_secret(f"the 400 reply for a raw {char!r}", reply.text)

        result = probe(url, tmp_path / "probe")
        assert result.returncode == 2, result
        assert "rtspUrl" in result.stderr and "%40" in result.stderr
        assert_no_secret(f"`camgate probe` of a raw {char!r}", result.stdout + result.stderr)

    # Nothing was created, and a restart of the camera with such a URL is refused the same way.
    assert api.get("/api/cameras").json()["data"]["totalCount"] == 0
    assert api.put("/api/cameras/ok", json={"rtspUrl": camera_url, "enabled": False}).is_success
    bad = camera_url.replace("//", f"//{USER}:{WRONG_PASSWORDS['@']}@")
    restart = api.post("/api/cameras/ok/restart", json={"rtspUrl": bad})
    assert restart.status_code == 400 and "%40" in restart.json()["error"]
    assert api.get("/api/cameras/ok").json()["data"]["rtspUrl"] == camera_url
    assert_no_secret("the server log", server.log())


@pytest.mark.timeout(60)
def test_an_upper_case_scheme_streams(server: CamgateServer, camera: RtspCamera) -> None:
    url = camera.url.replace("rtsp://", "RTSP://")
    assert server.client.put("/api/cameras/upper", json={"rtspUrl": url}).is_success
    status = server.wait_state("upper", {"running"}, RUNNING_TIMEOUT_S)
    assert status["rtspUrl"] == camera.url


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"resolution": "٣٢٠x٢٤٠"}, "overrides.resolution: must be WIDTHxHEIGHT in ASCII digits"),
        ({"videoBitrate": "999999M"}, "overrides.videoBitrate: must be bits per second"),
        ({"framerate": 500}, "overrides.framerate:"),
    ],
)
def test_overrides_ffmpeg_would_refuse_are_a_400_and_hold_no_slot(
    server: CamgateServer, overrides: dict[str, object], expected: str
) -> None:
    body = {"rtspUrl": "rtsp://127.0.0.1:9/cam", "overrides": overrides}
    reply = server.client.put("/api/cameras/bad", json=body)
    assert reply.status_code == 400 and reply.json()["error"].startswith(expected), reply.text
    assert server.client.get("/api/cameras").json()["data"]["totalCount"] == 0


# ----- percent-encoded credentials work and are redacted in every channel ----------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_encoded_passwords_stream_and_never_show_anywhere(
    make_server: MakeServer, tmp_path: Path, log_format: str
) -> None:
    log_file = tmp_path / f"camgate-{log_format}.log"
    server = make_server(LOG_FORMAT=log_format, LOG_FILE=str(log_file), **FAST)
    api = server.client
    with (
        RtspCamera(port=free_port(), user=USER, password=RIGHT_PASSWORD) as camera,
        EventFeed(server) as events,
    ):
        good = api.put("/api/cameras/good", json={"rtspUrl": encoded_url(camera, RIGHT_PASSWORD)})
        assert good.status_code == 200, good.text
        replies = [good.text]
        for char, password in WRONG_PASSWORDS.items():
            url = raw_url(camera, password) if char == ":" else encoded_url(camera, password)
            camera_id = f"wrong-{'colon' if char == ':' else ord(char)}"
            reply = server.service(cameraId=camera_id, action="start", rtspUrl=url)
            assert reply.status_code == 200, (char, reply.text)
            replies.append(reply.text)
            event(events, "exited", camera_id)
        event(events, "ready", "good")
        wrong = server.status("wrong-64")
        assert wrong["reason"] == "auth failed" and wrong["lastError"], wrong

        replies += [
            api.get("/api/cameras").text,
            api.get("/api/cameras/good").text,
            api.get("/api/cameras/wrong-35").text,
            api.get("/api/streams/service").text,
            api.get("/api/streams/service", params={"cameraId": "wrong-37"}).text,
            api.post("/api/cameras/good/start").text,  # 409: already running
            api.post("/api/cameras/wrong-63/restart").text,
        ]
        event(events, "restarted", "wrong-63")
        assert "***" in api.get("/api/cameras/good").json()["data"]["rtspUrl"]
        metrics = api.get("/metrics").text
        good_probe = probe(encoded_url(camera, RIGHT_PASSWORD), tmp_path / "probe")
        wrong_probe = probe(encoded_url(camera, WRONG_PASSWORDS["@"]), tmp_path / "probe")

    assert good_probe.returncode == 0 and "h264" in good_probe.stdout, good_probe
    assert wrong_probe.returncode == 1 and "401" in wrong_probe.stderr, wrong_probe
    assert_no_secret("API replies", "\n".join(replies))
    assert_no_secret("the event stream", json.dumps(events.seen))
    assert_no_secret("/metrics", metrics)
    assert_no_secret("`camgate probe`", good_probe.stdout + good_probe.stderr)
    assert_no_secret("`camgate probe` of a wrong password", wrong_probe.stderr)
    server.stop()
    assert_no_secret(f"{log_format} logs", server.log())
    assert_no_secret("the log file", log_file.read_text())
    if log_format == "json":
        lines = [line for line in log_file.read_text().splitlines() if line.strip()]
        assert lines and all(json.loads(line)["msg"] is not None for line in lines)
    assert "401" in server.log() or "auth failed" in server.log()


@pytest.mark.timeout(60)
def test_ffmpeg_command_lines_show_no_credentials(make_server: MakeServer) -> None:
    server = make_server(**FAST)
    assert server.process is not None
    server_pid = server.process.pid
    with RtspCamera(port=free_port(), user=USER, password=RIGHT_PASSWORD) as camera:
        url = encoded_url(camera, RIGHT_PASSWORD)
        assert server.client.put("/api/cameras/ps", json={"rtspUrl": url}).is_success
        server.wait_state("ps", {"running"}, RUNNING_TIMEOUT_S)
        command_lines = wait_for(
            lambda: ffmpeg_cmdlines(server_pid), 10, "the server's FFmpeg child"
        )
        assert_no_secret("FFmpeg's command line (ps)", "\n".join(command_lines))


# ----- limits ----------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_the_fourth_camera_over_max_cameras_3_is_refused_and_nothing_changes(
    make_server: MakeServer,
) -> None:
    server = make_server(MAX_CAMERAS="3")
    api = server.client
    url = "rtsp://127.0.0.1:9/cam"
    for camera_id in ("a", "b", "c"):
        reply = api.put(f"/api/cameras/{camera_id}", json={"rtspUrl": url, "enabled": False})
        assert reply.is_success, reply.text
    before = api.get("/api/cameras").json()["data"]

    refused = [
        api.put("/api/cameras/d", json={"rtspUrl": url, "enabled": False}),
        server.service(cameraId="d", action="start", rtspUrl=url),
    ]
    for reply in refused:
        assert reply.status_code == 409, reply.text
        assert reply.json()["error"] == (
            "Camera limit reached (MAX_CAMERAS=3): delete a camera first"
        )
    assert api.get("/api/cameras").json()["data"] == before
    assert api.get("/api/cameras/d").status_code == 404

    # The existing cameras can still be changed; a delete makes room for the fourth.
    assert api.put("/api/cameras/c", json={"rtspUrl": f"{url}2", "enabled": False}).is_success
    assert api.delete("/api/cameras/a").is_success
    assert api.put("/api/cameras/d", json={"rtspUrl": url, "enabled": False}).is_success
    ids = [s["cameraId"] for s in api.get("/api/cameras").json()["data"]["streams"]]
    assert ids == ["b", "c", "d"]


def send(
    client: httpx.AsyncClient, camera_id: str, url: str, kind: int
) -> Awaitable[httpx.Response]:
    """One of restart, delete, PUT (enabled or not), stop and start of a camera."""
    path = f"/api/cameras/{camera_id}"
    if kind == 1:
        return client.delete(path)
    if kind == 2:
        return client.put(path, json={"rtspUrl": url, "enabled": camera_id.endswith("1")})
    action = {0: "restart", 3: "stop", 4: "start"}[kind]
    return client.post(f"{path}/{action}")


async def storm(base_url: str, url: str, ids: list[str]) -> list[int]:
    """40 requests on the same cameras at once: a first wave with a delete in it, and a second
    wave sent the moment that delete is answered, while the rest of the first still waits."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        launch = asyncio.ensure_future
        first = [launch(send(client, ids[n % 2], url, kind=0)) for n in range(8)]
        deleted = launch(send(client, ids[0], url, kind=1))
        first += [deleted, *(launch(send(client, ids[n % 2], url, n % 5)) for n in range(11))]
        await asyncio.wait([deleted])
        second = [launch(send(client, ids[n % 2], url, n % 5)) for n in range(20)]
        replies = await asyncio.gather(*first, *second)
    return [reply.status_code for reply in replies]


@pytest.mark.timeout(120)
def test_concurrent_delete_and_restart_storms_end_without_a_500(
    make_server: MakeServer, camera: RtspCamera
) -> None:
    server = make_server(**FAST)
    api = server.client
    ids = ["storm-1", "storm-2"]
    for camera_id in ids:
        assert api.put(f"/api/cameras/{camera_id}", json={"rtspUrl": camera.url}).is_success

    codes = asyncio.run(storm(server.base_url, camera.url, ids))

    assert len(codes) == 40 and set(codes) <= {200, 404, 409}, codes
    assert "internal error" not in server.log() and "Traceback" not in server.log()
    # Consistent afterwards: every camera is settled, FFmpeg runs once per running camera, and
    # what the server says matches what it stored (it comes back the same after a restart).
    wait_for(lambda: settled(api) is not None, RUNNING_TIMEOUT_S, "the cameras to settle")
    before = settled(api)
    assert before is not None
    running = sum(1 for state in before.values() if state == "running")
    assert server.process is not None
    server_pid = server.process.pid
    wait_for(
        lambda: len(ffmpeg_cmdlines(server_pid)) == running,
        RUNNING_TIMEOUT_S,
        f"{running} FFmpeg children",
    )
    server.stop()
    again = make_server(data_dir=server.data_dir, **FAST)
    wait_for(lambda: settled(again.client) == before, RUNNING_TIMEOUT_S, "the same cameras back")


def settled(api: httpx.Client) -> dict[str, str] | None:
    """Each camera's state once all are running or stopped; None while any is in between."""
    streams = api.get("/api/cameras").json()["data"]["streams"]
    states = {str(s["cameraId"]): str(s["state"]) for s in streams}
    done = all(state in {"running", "stopped"} for state in states.values())
    return states if done else None
