"""Independent HLS clients play a freshly started camera from camgate's very first playlist.

One secured server and one camera for the module. A viewer link (signed URL) is what every
client gets, so the signature has to reach each media URI. GStreamer's playbin3 (``hlsdemux2``,
the strictest client we know) and FFmpeg's HLS demuxer start on the first playlist camgate
answers with 200; then the stream is restarted and its media URIs must all be new, with the
caching headers docs/llhls.md documents.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from tests.integration.media import decoded_video_frames
from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer, wait_for

pytestmark = pytest.mark.integration

CAMERA_ID = "clients"
ADMIN = "admin-7d1c5e9a0b3f4e21"
VIEWER = "viewer-3b8e2a6f1c0d9e47"
SYSTEM_PYTHON = "/usr/bin/python3"
GST_CLIENT = Path(__file__).parents[1] / "support" / "gst_hls_client.py"
PLAY_S = 5.0
FFMPEG_DECODE_S = 3
FPS = 25
MEDIA_CACHE = "private, max-age=86400, immutable"  # behind tokens: browser caches only


@pytest.fixture(scope="module")
def camera() -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), gop_s=2.0) as cam:
        yield cam


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CamgateServer]:
    data = tmp_path_factory.mktemp("clients") / "data"
    env = {"CAMGATE_API_TOKENS": f"admin:{ADMIN},viewer:{VIEWER}", "LOG_LEVEL": "info"}
    with CamgateServer(free_port(), data, env) as server:
        server.client.headers["Authorization"] = f"Bearer {ADMIN}"
        yield server


def start_stream(server: CamgateServer, camera: RtspCamera) -> None:
    reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
    assert reply.status_code == 200, reply.text


def signed_playlist_url(server: CamgateServer) -> str:
    reply = server.client.post(f"/api/cameras/{CAMERA_ID}/viewer-url", json={"ttlSeconds": 600})
    assert reply.status_code == 200, reply.text
    url: str = reply.json()["data"]["hls"]
    return url


def first_playlist(url: str) -> str:
    """The first 200 answer of the playlist URL, asked for as fast as a client would retry."""

    def answered() -> str | None:
        reply = httpx.get(url, timeout=10)
        return reply.text if reply.status_code == 200 else None

    return wait_for(answered, 40, "the first playlist", interval_s=0.02)


def gstreamer_plays(url: str, seconds: float) -> dict[str, Any]:
    result = subprocess.run(
        [SYSTEM_PYTHON, str(GST_CLIENT), url, str(seconds)],
        capture_output=True, text=True, timeout=seconds + 30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def media_uris(text: str) -> list[str]:
    playlist = m3u8.loads(text)
    uris = [segment.uri for segment in playlist.segments if segment.uri]
    uris += [part.uri for segment in playlist.segments for part in segment.parts]
    uris += re.findall(r'#EXT-X-MAP:URI="([^"]+)"', text)
    return uris


def test_gstreamer_and_ffmpeg_play_a_new_stream_from_its_first_playlist(
    server: CamgateServer, camera: RtspCamera
) -> None:
    start_stream(server, camera)
    url = signed_playlist_url(server)
    text = first_playlist(url)

    # Start every client at once on that first answer: nobody waits for a "riper" playlist.
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        gst = pool.submit(gstreamer_plays, url, PLAY_S)
        ll_frames = pool.submit(decoded_video_frames, url, FFMPEG_DECODE_S)
        plain_frames = pool.submit(decoded_video_frames, f"{url}&ll=0", FFMPEG_DECODE_S)
        report = gst.result()

    complete = [segment for segment in m3u8.loads(text).segments if segment.uri]
    assert len(complete) >= 2, text  # what hlsdemux2 needs to start
    assert "hlsdemux2" in report["demuxers"], report
    assert not [m for m in report["messages"] if m.startswith("error")], report
    assert report["first_frame_s"] is not None and report["first_frame_s"] < 2.0, report
    assert report["frames"] >= 2 * FPS, report  # it plays on, not just a first picture
    assert ll_frames.result() >= 0.9 * FFMPEG_DECODE_S * FPS
    assert plain_frames.result() >= 0.9 * FFMPEG_DECODE_S * FPS


def ensure_streaming(server: CamgateServer, camera: RtspCamera) -> None:
    """The first test starts the camera; run alone, this one does."""
    if server.client.get(f"/api/cameras/{CAMERA_ID}").status_code != 200:
        start_stream(server, camera)


def session_of(text: str) -> str:
    return media_uris(text)[0].split("/", 1)[0]


def test_media_uris_are_new_per_stream_session_and_cached_for_good(
    server: CamgateServer, camera: RtspCamera
) -> None:
    ensure_streaming(server, camera)
    url = signed_playlist_url(server)
    base, query = url.split("index.m3u8?", 1)
    text = first_playlist(url)
    before, session = media_uris(text), session_of(text)
    # Every media URI is in the session's directory and carries the viewer link's signature.
    assert all(uri.startswith(f"{session}/") and uri.endswith(f"?{query}") for uri in before)

    assert httpx.get(url, timeout=10).headers["cache-control"] == "no-cache"
    samples = [u for u in before if "/init-" in u][:1] + [u for u in before if "/seg-" in u][-1:]
    samples += [u for u in before if "/part-" in u][-1:]
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    for uri in samples:
        signed = httpx.get(base + uri, timeout=10)
        assert signed.status_code == 200, (uri, signed.text)
        assert signed.headers["cache-control"] == MEDIA_CACHE, uri
        with_token = httpx.get(base + uri.split("?")[0], headers=viewer, timeout=10)
        assert with_token.content == signed.content, uri
        assert with_token.headers["cache-control"] == MEDIA_CACHE, uri

    reply = server.service(cameraId=CAMERA_ID, action="restart")
    assert reply.status_code == 200, reply.text

    def new_session_playlist() -> str | None:
        text = first_playlist(url)
        return text if session_of(text) != session else None

    after_text = wait_for(new_session_playlist, 40, "the restarted stream's playlist")

    after = media_uris(after_text)
    assert not set(before) & set(after), "a URI named different bytes in two sessions"
    for uri in samples:  # the old session's media are gone, never replaced by new bytes
        assert httpx.get(base + uri, timeout=10).status_code == 404, uri
