"""JPEG snapshots as Home Assistant or a dashboard fetch them, from a real test camera through a
real camgate server; every JPEG is checked with ffprobe."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.media import probe_streams
from tests.support.camera import RtspCamera
from tests.support.server import CamgateServer, ffmpeg_cmdlines, wait_for

pytestmark = pytest.mark.integration

CAMERA_ID = "yard"
SNAPSHOT = f"/api/cameras/{CAMERA_ID}/snapshot.jpg"
CONCURRENT_REQUESTS = 20
ADMIN = "admin-7d1e5c3b9a2f4e60"
VIEWER = "viewer-3a9c1e7b5d2f4a08"


def jpeg_size(data: bytes, tmp_path: Path) -> tuple[int, int]:
    """(width, height) of a JPEG as ffprobe reads it; fails if it is not one."""
    path = tmp_path / "snapshot.jpg"
    path.write_bytes(data)
    (stream,) = probe_streams(path)
    assert stream["codec_name"] == "mjpeg", stream
    return int(str(stream["width"])), int(str(stream["height"]))


def snapshot_figures(client: httpx.Client) -> dict[str, Any]:
    status = client.get(f"/api/cameras/{CAMERA_ID}").json()["data"]
    figures: dict[str, Any] = status["outputs"]["snapshot"]
    return figures


def add_camera(client: httpx.Client, camera: RtspCamera) -> None:
    created = client.put(f"/api/cameras/{CAMERA_ID}", json={"rtspUrl": camera.url})
    assert created.status_code == 200, created.text
    wait_for(
        lambda: client.get(f"/api/cameras/{CAMERA_ID}").json()["data"]["state"] == "running",
        30,
        f"{CAMERA_ID} to run",
    )


class DecoderWatch:
    """Samples the server's FFmpeg children while it runs; counts the JPEG decoders seen."""

    def __init__(self, server_pid: int) -> None:
        self._server_pid = server_pid
        self._stop = threading.Event()
        self.seen: set[str] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            decoders = [line for line in ffmpeg_cmdlines(self._server_pid) if "mjpeg" in line]
            self.seen.update(decoders)

    def __enter__(self) -> DecoderWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_a_running_camera_serves_jpeg_snapshots(
    server: CamgateServer, camera: RtspCamera, tmp_path: Path
) -> None:
    api = server.client
    add_camera(api, camera)

    full = api.get(SNAPSHOT)
    assert full.status_code == 200, full.text
    assert full.headers["content-type"] == "image/jpeg"
    assert full.headers["cache-control"] == "no-cache"
    assert jpeg_size(full.content, tmp_path) == (640, 360)

    small = api.get(SNAPSHOT, params={"width": "320"})
    assert small.status_code == 200, small.text
    assert jpeg_size(small.content, tmp_path) == (320, 180)

    status = api.get(f"/api/cameras/{CAMERA_ID}").json()["data"]
    assert status["playback"]["snapshot"] == SNAPSHOT
    assert status["outputs"]["snapshot"]["decodes"] >= 2


def test_concurrent_requests_share_one_decoder(server: CamgateServer, camera: RtspCamera) -> None:
    api = server.client
    add_camera(api, camera)
    assert server.process is not None
    before = snapshot_figures(api)["decodes"]
    barrier = threading.Barrier(CONCURRENT_REQUESTS)

    def fetch(_: int) -> bytes:
        with httpx.Client(base_url=server.base_url, timeout=20) as client:
            barrier.wait(10)
            response = client.get(SNAPSHOT, params={"width": "288"})  # a width not asked before
            assert response.status_code == 200, response.text
            return response.content

    with DecoderWatch(server.process.pid) as watch, ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        bodies = list(pool.map(fetch, range(CONCURRENT_REQUESTS)))

    decodes = snapshot_figures(api)["decodes"] - before
    distinct = len(set(bodies))
    # A keyframe (every 2 s) may land between two requests: then its picture is decoded too.
    assert distinct <= 2, distinct
    assert decodes == distinct, (decodes, distinct)
    assert len(watch.seen) <= distinct, watch.seen
    assert snapshot_figures(api)["sharedDecodes"] + snapshot_figures(api)["cacheHits"] >= (
        CONCURRENT_REQUESTS - distinct
    )


def test_snapshot_errors_say_what_is_wrong(server: CamgateServer, camera: RtspCamera) -> None:
    api = server.client
    add_camera(api, camera)

    for width in ["abc", "15", "3841", "", "+320", "0320.5", "٣٢٠"]:
        bad = api.get(SNAPSHOT, params={"width": width})
        assert bad.status_code == 400, width
        assert bad.json()["success"] is False and "width" in bad.json()["error"], width

    unknown = api.get("/api/cameras/ghost/snapshot.jpg")
    assert unknown.status_code == 404
    assert unknown.json() == {"success": False, "error": "Camera ghost not found"}

    assert api.post(f"/api/cameras/{CAMERA_ID}/stop").status_code == 200
    stopped = api.get(SNAPSHOT)
    assert stopped.status_code == 503
    assert stopped.headers["retry-after"] == "1"
    assert stopped.json()["success"] is False and CAMERA_ID in stopped.json()["error"]


def test_snapshots_need_a_viewer_token_or_a_signed_url(
    make_server: Callable[..., CamgateServer], camera: RtspCamera, tmp_path: Path
) -> None:
    server = make_server(CAMGATE_API_TOKENS=f"admin:{ADMIN},viewer:{VIEWER}")
    admin = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {ADMIN}"})
    viewer = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {VIEWER}"})
    anonymous = httpx.Client(base_url=server.base_url)
    with admin, viewer, anonymous:
        add_camera(admin, camera)

        assert anonymous.get(SNAPSHOT).status_code == 401
        as_viewer = viewer.get(SNAPSHOT, timeout=20)
        assert as_viewer.status_code == 200, as_viewer.text
        assert jpeg_size(as_viewer.content, tmp_path) == (640, 360)

        link = viewer.post(f"/api/cameras/{CAMERA_ID}/viewer-url", json={"ttlSeconds": 60})
        signed_query = urlsplit(link.json()["data"]["watch"]).query
        signed = anonymous.get(f"{SNAPSHOT}?{signed_query}&width=160", timeout=20)
        assert signed.status_code == 200, signed.text
        assert jpeg_size(signed.content, tmp_path) == (160, 90)

        forged = anonymous.get(f"{SNAPSHOT}?{signed_query[:-2]}xx")
        assert forged.status_code == 403
        other_camera = anonymous.get(f"/api/cameras/other/snapshot.jpg?{signed_query}")
        assert other_camera.status_code == 403  # a link signs one camera only
