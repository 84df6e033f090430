"""The resource API, events and metrics over the same service, against a real camera."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.support.camera import RtspCamera
from tests.support.server import CamgateServer, ffmpeg_pids, wait_for

pytestmark = pytest.mark.integration


def collect_events(
    server: CamgateServer, into: list[dict[str, object]], stop: threading.Event
) -> None:
    """Reads /api/events until `stop` is set (bounded by the client's read timeout)."""
    timeout = httpx.Timeout(5, read=60)
    try:
        with (
            httpx.Client(base_url=server.base_url, timeout=timeout) as client,
            client.stream("GET", "/api/events") as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data: "):
                    into.append(json.loads(line[6:]))
                if stop.is_set():
                    return
    except httpx.HTTPError:
        return  # the server went away at the end of the test


def test_camera_lifecycle_through_the_resource_api(
    server: CamgateServer, camera: RtspCamera
) -> None:
    events: list[dict[str, object]] = []
    stop = threading.Event()
    reader = threading.Thread(target=collect_events, args=(server, events, stop), daemon=True)
    reader.start()
    api = server.client

    created = api.put(
        "/api/cameras/door", json={"rtspUrl": camera.url, "overrides": {"audio": "none"}}
    )
    assert created.status_code == 200 and created.json()["success"] is True
    server.wait_state("door", {"running"}, 30)
    assert api.get("/api/cameras").json()["data"]["activeCount"] == 1
    assert api.get("/api/cameras/door").json()["data"]["overrides"] == {"audio": "none"}

    stopped = api.post("/api/cameras/door/stop").json()
    assert stopped["data"]["state"] == "stopped"
    assert api.post("/api/cameras/door/start").status_code == 200
    server.wait_state("door", {"running"}, 30)
    assert api.post("/api/cameras/door/start").status_code == 409
    assert api.post("/api/cameras/door/restart").json()["data"]["restartCount"] == 1

    metrics = api.get("/metrics").text
    assert 'camgate_stream_received_bytes_total{camera="door"}' in metrics
    assert "camgate_max_concurrent_streams 16.0" in metrics

    assert api.delete("/api/cameras/door").status_code == 200
    assert api.get("/api/cameras/door").status_code == 404
    assert server.process is not None
    server_pid = server.process.pid
    wait_for(lambda: not ffmpeg_pids(server_pid, "door"), 10, "ffmpeg to exit after delete")

    wait_for(lambda: any(e["type"] == "deleted" for e in events), 10, "the deleted event")
    stop.set()
    types = [e["type"] for e in events if e["cameraId"] == "door"]
    for expected in ("started", "ready", "stopped", "deleted"):
        assert expected in types


def test_resource_api_rejects_bad_input_without_changes(server: CamgateServer) -> None:
    api = server.client
    bad_url = api.put("/api/cameras/x", json={"rtspUrl": "ftp://nope"})
    assert bad_url.status_code == 400 and "rtspUrl" in bad_url.json()["error"]
    bad_id = api.put("/api/cameras/bad%20id", json={"rtspUrl": "rtsp://h/x"})
    assert bad_id.status_code == 400 and "camera_id" in bad_id.json()["error"]
    unknown_field = api.put("/api/cameras/x", json={"rtspUrl": "rtsp://h/x", "mode": 1})
    assert unknown_field.status_code == 400 and "mode" in unknown_field.json()["error"]
    assert api.post("/api/cameras/ghost/start").status_code == 404
    assert api.get("/api/cameras").json()["data"]["totalCount"] == 0
    assert api.get("/readyz").json()["checks"] == {"store": True, "manager": True}
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert "/api/streams/service" in paths and "/api/cameras/{camera_id}" in paths
