"""The pages' files from memory: versioned references in the pages, cached for good under the
version, revalidated without it, 304 for an ETag the browser has, HEAD, and the security
headers of every answer. In-process app (the request guard and both fast paths in front)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from camgate.api.app import create_app
from camgate.api.assets import Assets
from camgate.api.web import STATIC_DIR
from camgate.config import load_settings
from camgate.store import MemoryStore

BASE = "http://127.0.0.1:8080"


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(CAMGATE_DATA_DIR=str(tmp_path / "data"))
    with TestClient(create_app(settings, MemoryStore()), base_url=BASE) as client:
        camera = {"rtspUrl": "rtsp://127.0.0.1:9/x", "enabled": False}
        assert client.put("/api/cameras/door", json=camera).status_code == 200
        yield client


def referenced(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', page)


def test_every_file_a_page_names_is_versioned_and_cached_for_good(http: TestClient) -> None:
    page = http.get("/watch/door")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    urls = referenced(page.text)
    assert len(urls) >= 10
    version = {url.split("?v=")[1] for url in urls}
    assert len(version) == 1 and re.fullmatch(r"[0-9a-f]{16}", version.pop())
    for url in urls:
        reply = http.get(url)
        assert reply.status_code == 200, url
        assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert reply.headers["content-security-policy"]  # the request guard's headers
        assert int(reply.headers["content-length"]) == len(reply.content) > 0
    script = http.get(next(url for url in urls if "/auth.js" in url))
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.content == (STATIC_DIR / "auth.js").read_bytes()  # nothing in it to version


def test_the_player_loads_hls_js_by_its_versioned_url(http: TestClient) -> None:
    url = next(u for u in referenced(http.get("/watch/door").text) if "/watch.js" in u)
    (hls_url,) = re.findall(r'"(/static/vendor/hls\.min\.js[^"]*)"', http.get(url).text)
    assert hls_url == url.replace("watch.js", "vendor/hls.min.js")
    assert http.get(hls_url).content == (STATIC_DIR / "vendor/hls.min.js").read_bytes()


def test_without_the_version_the_browser_revalidates_and_gets_304(http: TestClient) -> None:
    first = http.get("/static/watch.js")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = http.get("/static/watch.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    stale = http.get("/static/watch.js?v=0000000000000000")  # an older build's URL
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    other = http.get("/static/watch.js", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


def test_head_answers_the_headers_only_and_unknown_files_are_404(http: TestClient) -> None:
    head = http.head("/static/watch.css")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(http.get("/static/watch.css").content)
    assert http.get("/static/no-such-file.js").status_code == 404
    assert http.get("/static/../pyproject.toml").status_code == 404


def test_a_change_to_any_file_changes_the_version() -> None:
    files = {"a.js": b'load("/static/b.js")', "b.js": b"one"}
    before = Assets(files)
    after = Assets({**files, "b.js": b"two"})
    assert before.version != after.version
    assert before.page("a.js") == f'load("{before.url("b.js")}")'.encode()
    assert Assets(dict(files)).version == before.version  # the same files, the same version
