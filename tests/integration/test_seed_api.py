"""The seed contract against a real RTSP camera and real FFmpeg: start, play, stop, limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.media import (
    decoded_frames,
    listed_segments_file,
    probe_streams,
    wait_playlist,
)
from tests.support.camera import RtspCamera
from tests.support.events import EventFeed
from tests.support.ports import free_port
from tests.support.server import CamgateServer, ffmpeg_cmdlines, ffmpeg_pids, wait_for

pytestmark = pytest.mark.integration


def server_pid(server: CamgateServer) -> int:
    assert server.process is not None
    return server.process.pid


def test_start_serves_decodable_h264_and_stop_cleans_up(
    server: CamgateServer, camera: RtspCamera, tmp_path: Path
) -> None:
    reply = server.service(cameraId="camera-1", rtspUrl=camera.url, action="start")
    assert reply.status_code == 200
    assert reply.json() == {"success": True, "message": "Stream started for camera camera-1"}

    # A new stream's first segments are one part each (docs/llhls.md, lead-in); wait for a
    # playlist that also lists a whole 2 s GOP and decode everything it lists.
    playlist = wait_playlist(server, "camera-1", min_listed_s=2.0)
    media = listed_segments_file(server, "camera-1", playlist, tmp_path / "listed.mp4")
    video = [s for s in probe_streams(media) if s["codec_type"] == "video"]
    assert video and video[0]["codec_name"] == "h264"
    assert (video[0]["width"], video[0]["height"]) == (640, 360)
    assert decoded_frames(media) >= 45  # 25 fps: at least 1.8 s of the listed media decodes

    status = server.status("camera-1")
    assert status["state"] == "running"
    assert status["playback"]["hls"] == "/hls/camera-1/index.m3u8"
    assert status["codecs"]["video"]["codec"] == "h264"
    assert status["transcoding"] is False
    assert status["bytesReceived"] > 0
    assert ffmpeg_pids(server_pid(server), "camera-1") == [status["pid"]]
    assert not any(camera.url in line for line in ffmpeg_cmdlines(server_pid(server)))

    reply = server.service(cameraId="camera-1", action="stop")
    assert reply.json() == {"success": True, "message": "Stream stopped for camera camera-1"}
    wait_for(lambda: not ffmpeg_pids(server_pid(server), "camera-1"), 10, "ffmpeg to exit")
    assert server.client.get("/hls/camera-1/index.m3u8").status_code == 404
    assert server.status("camera-1")["state"] == "stopped"


def test_duplicate_start_is_409_and_limit_is_503(
    make_server,
    camera: RtspCamera,  # type: ignore[no-untyped-def]
) -> None:
    server = make_server(MAX_CONCURRENT_STREAMS="1")
    assert server.service(cameraId="a", rtspUrl=camera.url, action="start").status_code == 200
    again = server.service(cameraId="a", rtspUrl=camera.url, action="start")
    assert again.status_code == 409
    assert again.json() == {"success": False, "error": "Stream already running for camera a"}

    full = server.service(cameraId="b", rtspUrl=camera.url, action="start")
    assert full.status_code == 503
    assert full.headers["Retry-After"].isdigit()
    assert full.json()["success"] is False and "Maximum concurrent streams" in full.json()["error"]

    listing = server.client.get("/api/streams/service").json()
    assert listing["success"] is True
    assert listing["data"]["activeCount"] == 1
    assert listing["data"]["maxConcurrentStreams"] == 1
    assert [s["cameraId"] for s in listing["data"]["streams"]] == ["a"]
    assert server.client.get("/api/streams/service", params={"cameraId": "b"}).status_code == 404


def test_restart_reuses_url_and_counts(server: CamgateServer, camera: RtspCamera) -> None:
    server.service(cameraId="cam", rtspUrl=camera.url, action="start", overrides={"audio": "none"})
    first = server.wait_state("cam", {"running"}, 30)
    reply = server.service(cameraId="cam", action="restart")
    assert reply.json() == {"success": True, "message": "Stream restarted for camera cam"}
    second = server.wait_state("cam", {"running"}, 30)
    assert second["restartCount"] == first["restartCount"] + 1
    assert second["overrides"] == {"audio": "none"}
    assert second["pid"] != first["pid"]
    assert ffmpeg_pids(server_pid(server), "cam") == [second["pid"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cameraId": "c", "action": "dance"}, "action"),
        ({"action": "start", "rtspUrl": "rtsp://h/x"}, "cameraId"),
        ({"cameraId": "bad id", "action": "stop"}, "cameraId"),
        ({"cameraId": "c", "action": "start", "rtspUrl": "http://h/x"}, "rtspUrl"),
        ({"cameraId": "c", "action": "start"}, "rtspUrl"),
        (
            {
                "cameraId": "c",
                "action": "start",
                "rtspUrl": "rtsp://h/x",
                "overrides": {"resolution": "huge"},
            },
            "overrides.resolution",
        ),
        (
            {
                "cameraId": "c",
                "action": "start",
                "rtspUrl": "rtsp://h/x",
                "overrides": {"turbo": True},
            },
            "overrides.turbo",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_field_and_change_nothing(
    server: CamgateServer, body: dict[str, object], field: str
) -> None:
    reply = server.service(**body)
    assert reply.status_code == 400
    assert reply.json()["success"] is False
    assert field in reply.json()["error"]
    assert server.client.get("/api/streams/service").json()["data"]["streams"] == []


def test_malformed_json_and_unknown_camera(server: CamgateServer) -> None:
    reply = server.client.post(
        "/api/streams/service", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400 and reply.json()["success"] is False
    stop = server.service(cameraId="ghost", action="stop")
    assert stop.status_code == 404
    assert stop.json() == {"success": False, "error": "Camera ghost not found"}


def test_unreachable_camera_ends_in_a_clear_error_state(server: CamgateServer) -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/nothing"
    assert server.service(cameraId="dead", rtspUrl=url, action="start").status_code == 200
    status = wait_for(lambda: (s := server.status("dead"))["reason"] and s, 30, "a failure reason")
    assert status["state"] in {"backoff", "starting"}
    assert status["reason"] == "unreachable"
    assert "refused" in status["lastError"].lower()


def test_credentials_never_leak(make_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    password = "Sup3rSecretPw"
    with RtspCamera(port=free_port(), user="viewer", password=password) as cam:
        server = make_server()
        with EventFeed(server) as feed:
            url = cam.url_with_credentials("viewer", password)
            assert server.service(cameraId="secure", rtspUrl=url, action="start").status_code == 200
            ps_lines: list[str] = []  # every FFmpeg command line seen, the probe's included

            def running_while_watching_ps() -> dict[str, object] | None:
                ps_lines.extend(ffmpeg_cmdlines(server_pid(server)))
                status = server.status("secure")
                return status if status["state"] == "running" else None

            status = wait_for(running_while_watching_ps, 30, "secure to run", interval_s=0.02)
            ps_lines.extend(ffmpeg_cmdlines(server_pid(server)))
            assert any("camgate_camera=secure" in line for line in ps_lines), ps_lines
            for line in ps_lines:  # what any local user sees in ps
                assert url not in line and password not in line and "viewer" not in line, line
            assert password not in str(status)
            assert status["rtspUrl"].startswith("rtsp://***:***@")
            wrong = cam.url_with_credentials("viewer", "wrong-pass-123")
            server.service(cameraId="wrong", rtspUrl=wrong, action="start")
            exited = feed.wait("exited", "wrong", 30)
            failing = server.status("wrong")
            assert failing["reason"] == "auth failed" and exited["data"]["reason"] == "auth failed"
            listing = server.client.get("/api/streams/service").text
            metrics = server.client.get("/metrics").text
            server.service(cameraId="secure", action="stop")
            feed.wait("stopped", "secure", 15)
            events = json.dumps(feed.seen)
    log = server.log()
    for text in (listing, metrics, log, events):
        assert password not in text and "wrong-pass-123" not in text
    assert "secure" in log  # the log did record the stream, by id
