"""The player page's answers in-process: a 404 page for an unknown camera (only to those who may
know which cameras exist) and the feed of one camera's state, by access level."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from camgate.api.app import create_app
from camgate.api.auth import ViewerSigner
from camgate.config import load_settings
from camgate.store import MemoryStore

BASE = "http://127.0.0.1:8080"
ADMIN = "admin-token-0123456789"
VIEWER = "viewer-token-0123456789"
SECRET = "viewer-secret-for-tests-0123456789"
CAMERA_URL = "rtsp://cam-user:cam-password@127.0.0.1:9/x"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        CAMGATE_DATA_DIR=str(tmp_path / "data"),
        CAMGATE_API_TOKENS=f"admin:{ADMIN},viewer:{VIEWER}",
        CAMGATE_VIEWER_SECRET=SECRET,
    )
    with TestClient(create_app(settings, MemoryStore()), base_url=BASE) as http:
        reply = http.put(
            "/api/cameras/door",
            json={"rtspUrl": CAMERA_URL, "enabled": False},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert reply.status_code == 200, reply.text
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed(camera_id: str) -> str:
    return ViewerSigner(SECRET.encode()).query(camera_id, int(time.time()) + 600)


def first_state(http: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    with http.stream("GET", url, headers=headers) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = reply.iter_lines()
        for line in lines:
            if line == "event: state":
                data: dict[str, Any] = json.loads(next(lines).removeprefix("data: "))
                return data
    raise AssertionError("no state event")


def test_an_unknown_camera_is_a_404_page_for_those_who_may_know(secured: TestClient) -> None:
    page = secured.get("/watch/nosuch", headers=bearer(VIEWER))
    assert page.status_code == 404
    assert "There is no camera <strong>nosuch</strong>" in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert secured.get("/watch/door", headers=bearer(VIEWER)).status_code == 200
    # A valid viewer link of a camera deleted since.
    link = signed("gone")
    assert secured.get(f"/watch/gone?{link}").status_code == 404


def test_anyone_else_gets_the_same_page_for_every_id(secured: TestClient) -> None:
    known, unknown = secured.get("/watch/door"), secured.get("/watch/nosuch")
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    assert secured.get(f"/watch/nosuch?{signed('other')}").status_code == 200  # not its link


def test_the_404_page_escapes_the_id(tmp_path: Path) -> None:
    settings = load_settings(CAMGATE_DATA_DIR=str(tmp_path / "data"))
    with TestClient(create_app(settings, MemoryStore()), base_url=BASE) as http:
        page = http.get("/watch/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert page.status_code == 404
    assert "<img" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_the_feed_needs_a_viewer_token_or_the_cameras_signed_link(secured: TestClient) -> None:
    assert secured.get("/watch/door/events").status_code == 401
    assert secured.get(f"/watch/door/events?{signed('other')}").status_code == 403
    assert secured.get("/watch/nosuch/events", headers=bearer(VIEWER)).status_code == 404

    state = first_state(secured, "/watch/door/events", bearer(VIEWER))
    assert state["cameraId"] == "door" and state["state"] == "stopped"
    assert state["browserPlayback"] == {"playable": None, "note": None}
    assert state["transcodes"] == {"video": False, "audio": False}
    assert "cam-password" not in json.dumps(state)

    by_link = first_state(secured, f"/watch/door/events?{signed('door')}", {})
    assert by_link["state"] == "stopped" and by_link["message"] is None
