"""Browser attacks and request limits against the in-process app (no FFmpeg is started).

Each case is what a hostile web page or client would try; each must be refused and change
nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from camgate.api.app import create_app
from camgate.config import load_settings
from camgate.store import MemoryStore

BASE = "http://127.0.0.1:8080"
ADMIN = "admin-token-0123456789"


def make_client(tmp_path: Path, **env: str) -> TestClient:
    settings = load_settings(CAMGATE_DATA_DIR=str(tmp_path / "data"), **env)
    return TestClient(create_app(settings, MemoryStore()), base_url=BASE)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as http:
        reply = http.put(
            "/api/cameras/door", json={"rtspUrl": "rtsp://127.0.0.1:9/x", "enabled": False}
        )
        assert reply.status_code == 200, reply.text
        yield http


def state_of(client: TestClient, camera_id: str = "door") -> Any:
    return client.get(f"/api/cameras/{camera_id}").json()["data"]["state"]


@pytest.mark.parametrize(
    "form",
    [
        {"headers": {"content-type": "application/x-www-form-urlencoded"}, "content": b""},
        {"headers": {"content-type": "text/plain"}, "content": b"x"},
        {"headers": {"content-type": "multipart/form-data; boundary=b"}, "content": b"--b--"},
    ],
)
@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_cross_site_form_posts_are_refused(
    client: TestClient, form: dict[str, Any], action: str
) -> None:
    before = state_of(client)
    # The browser adds the attacker page's Origin; without it the content type alone is refused.
    foreign = client.post(
        f"/api/cameras/door/{action}",
        headers={**form["headers"], "origin": "https://evil.example"},
        content=form["content"],
    )
    bare = client.post(f"/api/cameras/door/{action}", **form)
    assert foreign.status_code == 403, foreign.text
    assert bare.status_code == 415, bare.text
    assert "application/json" in bare.json()["error"]
    assert state_of(client) == before


def test_same_origin_json_and_bodiless_curl_posts_work(client: TestClient) -> None:
    own = client.post("/api/cameras/door/stop", headers={"origin": BASE}, json={})
    curl = client.post("/api/cameras/door/stop")
    assert own.status_code == 200 and curl.status_code == 200


def test_foreign_origin_on_any_state_change_is_refused(client: TestClient) -> None:
    evil = {"origin": "https://evil.example"}
    assert client.delete("/api/cameras/door", headers=evil).status_code == 403
    put = client.put("/api/cameras/door", headers=evil, json={"rtspUrl": "rtsp://10.0.0.9/x"})
    assert put.status_code == 403
    assert client.get("/api/cameras/door").json()["data"]["rtspUrl"] == "rtsp://127.0.0.1:9/x"
    assert client.post("/api/cameras/door/stop", headers={"origin": "null"}).status_code == 403
    cross = {"sec-fetch-site": "cross-site"}
    assert client.post("/api/cameras/door/stop", headers=cross).status_code == 403


def test_dns_rebinding_host_is_refused(client: TestClient) -> None:
    rebound = client.get("/api/cameras", headers={"host": "attacker.example:8080"})
    assert rebound.status_code == 403
    assert "CAMGATE_ALLOWED_HOSTS" in rebound.json()["error"]
    assert client.get("/api/cameras", headers={"host": "localhost:8080"}).status_code == 200
    assert client.get("/api/cameras", headers={"host": "192.168.1.7:8080"}).status_code == 200
    assert client.get("/api/cameras", headers={"host": "[::1]:8080"}).status_code == 200


def test_allowed_hosts_setting_adds_names(tmp_path: Path) -> None:
    with make_client(tmp_path, CAMGATE_ALLOWED_HOSTS="camgate.lan, nvr.lan") as http:
        assert http.get("/healthz", headers={"host": "camgate.lan"}).status_code == 200
        assert http.get("/healthz", headers={"host": "other.lan"}).status_code == 403


def test_huge_body_is_refused_before_it_is_read(client: TestClient) -> None:
    body = json.dumps({f"k{i}": "v" * 100 for i in range(100_000)}).encode()  # ~10 MB
    started = time.monotonic()
    reply = client.put(
        "/api/cameras/door", content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413
    assert time.monotonic() - started < 2.0
    assert len(reply.content) < 200


def test_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):
            yield b" " * 1024

    reply = client.put(
        "/api/cameras/door", content=chunks(), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413


def test_validation_errors_stay_small(client: TestClient) -> None:
    body = {"rtspUrl": "rtsp://127.0.0.1:9/x", **{f"unknown_key_{i}": 1 for i in range(2000)}}
    reply = client.put("/api/cameras/door", json=body)
    assert reply.status_code == 400
    assert len(reply.content) < 1500
    assert "more problems" in reply.json()["error"]


@pytest.mark.parametrize("path", ["/", "/watch/door", "/api/cameras", "/hls/door/index.m3u8"])
def test_pages_and_replies_forbid_framing(client: TestClient, path: str) -> None:
    reply = client.get(path)
    assert reply.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert "script-src 'self'" in reply.headers["content-security-policy"]
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_playback_has_no_cors_by_default(client: TestClient) -> None:
    reply = client.get("/hls/door/index.m3u8", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in reply.headers


def test_token_makes_the_content_type_rule_moot_but_not_the_origin_rule(tmp_path: Path) -> None:
    with make_client(tmp_path, CAMGATE_API_TOKENS=ADMIN) as http:
        auth = {"authorization": f"Bearer {ADMIN}"}
        put = http.put("/api/cameras/door", headers=auth, json={"rtspUrl": "rtsp://127.0.0.1:9/x"})
        assert put.status_code == 200
        stop = http.post("/api/cameras/door/stop", headers={**auth, "content-type": "text/plain"})
        assert stop.status_code == 200
        evil = {**auth, "origin": "https://evil.example"}
        assert http.post("/api/cameras/door/stop", headers=evil).status_code == 403
        assert http.post("/api/cameras/door/stop").status_code == 401


def test_a_bad_camera_id_is_explained_in_words(client: TestClient) -> None:
    reply = client.get("/api/cameras/-bad*id")
    assert reply.status_code == 400
    assert reply.json()["error"] == (
        "camera_id: must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )
