"""The whole app in-process (create_app, lifespan, real routes) over a stand-in FFmpeg that
replays captured fMP4: the API, the HLS output, status, events and on-demand pulling without a
camera, in a few seconds."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from camgate.api.app import create_app
from camgate.config import load_settings
from camgate.store import MemoryStore
from tests.support.fake_ffmpeg import install_fake_ffmpeg

BASE = "http://127.0.0.1:8080"
URL = "rtsp://user:secret-pw@127.0.0.1:8554/cam"
DEADLINE_S = 15.0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        CAMGATE_DATA_DIR=str(tmp_path / "data"),
        FFMPEG_PATH=str(install_fake_ffmpeg(tmp_path)),
        ON_DEMAND_IDLE_S="1",
        HLS_BLOCK_TIMEOUT="2",
    )
    with TestClient(create_app(settings, MemoryStore()), base_url=BASE) as http:
        yield http


def wait_status(client: TestClient, camera_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.get(f"/api/cameras/{camera_id}").json()["data"]
        if status["state"] == state:
            return status
        time.sleep(0.05)
    raise AssertionError(f"{camera_id} never reached {state}: {status}")


def test_a_camera_streams_through_the_hls_output(client: TestClient) -> None:
    assert client.put("/api/cameras/door", json={"rtspUrl": URL}).status_code == 200
    status = wait_status(client, "door", "running")
    assert status["codecs"]["video"]["codec"] == "h264"
    assert status["outputs"]["hls"]["segments"] >= 0 and "bytesHeld" in status["outputs"]["hls"]
    assert "secret-pw" not in str(status)

    playlist = client.get("/hls/door/index.m3u8")
    assert playlist.status_code == 200 and "#EXT-X-PART:" in playlist.text
    init_uri = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist.text)
    assert init_uri is not None, playlist.text
    init = client.get(f"/hls/door/{init_uri.group(1)}")
    assert init.status_code == 200 and init.content[4:8] == b"ftyp"
    after = client.get("/api/cameras/door").json()["data"]
    assert after["outputs"]["hls"]["bytesSent"] >= len(init.content)
    metrics = client.get("/metrics").text
    assert 'camgate_output_sent_bytes_total{camera="door",output="hls"}' in metrics
    assert 'camgate_output_figure{camera="door",figure="queueDrops",output="mse"}' in metrics

    stopped = client.post("/api/cameras/door/stop").json()["data"]
    assert stopped["state"] == "stopped" and stopped["runningSince"] is None
    assert client.get("/hls/door/index.m3u8").status_code == 404


def test_an_on_demand_camera_is_pulled_for_a_viewer_then_idles(client: TestClient) -> None:
    created = client.put("/api/cameras/gate", json={"rtspUrl": URL, "onDemand": True})
    assert created.json()["data"]["state"] == "idle"
    assert created.json()["data"]["pid"] is None

    playlist = client.get("/hls/gate/index.m3u8")  # wakes it and waits
    assert playlist.status_code == 200 and "#EXT-X-PART:" in playlist.text
    assert client.get("/api/cameras/gate").json()["data"]["pid"] is not None

    idle = wait_status(client, "gate", "idle")  # no viewer for ON_DEMAND_IDLE_S (+ HLS memory)
    assert idle["pid"] is None and idle["uptimeSeconds"] == 0


def test_the_openapi_schema_describes_the_replies(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    reply = schema["paths"]["/api/cameras/{camera_id}"]["get"]["responses"]
    assert reply["200"]["content"]["application/json"]["schema"]["$ref"].endswith("StatusReply")
    assert reply["404"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorReply")
    states = schema["components"]["schemas"]["StreamState"]["enum"]
    assert {"idle", "starting", "running", "backoff", "stopped", "failed"} <= set(states)
