"""The HLS fast path: the routes' answers byte for byte, and the app's for anything else."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from camgate.api.auth import Authorizer, TokenSet, ViewerSigner
from camgate.api.guard import Receive, Scope, Send
from camgate.api.outputs.hls import HlsAnswers, create_hls_router
from camgate.api.outputs.hls_fast import HlsFastPath
from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from camgate.outputs.hls.live import LiveHls
from camgate.outputs.hls.segmenter import Segmenter

DATA = Path(__file__).parent / "data"
VIEWER = "v" * 24
FALLBACK_STATUS = 299  # what the app behind the fast path answers, so a test sees who answered


def live_camera(segments: int = 3) -> LiveHls:
    init, *fragments = Fmp4Reader().feed((DATA / "av_every_frame_ff5.mp4").read_bytes())
    assert isinstance(init, InitSegment)
    live = LiveHls(Segmenter(1.0, 0.2, 5))
    live.set_init(init)
    media: Iterator[Fragment] = iter(f for f in fragments if isinstance(f, Fragment))
    while len(live.segmenter.segments) < segments:
        live.add_fragment(next(media))
    return live


def open_server() -> Authorizer:
    return Authorizer(TokenSet("", None), ViewerSigner(b"k" * 32))


async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": FALLBACK_STATUS, "headers": []})
    await send({"type": "http.response.body", "body": b"the app"})


def here(_request: object, _camera_id: str) -> bool:
    return False  # one node: every camera runs here


def fast_only(
    live: LiveHls, authorizer: Authorizer, runs_elsewhere: Callable[[Any, str], bool] = here
) -> httpx.AsyncClient:
    """The fast path in front of an app that answers everything with FALLBACK_STATUS."""
    answers = HlsAnswers({"cam": live}.get, block_timeout_s=0.05)
    app = HlsFastPath(
        fallback, answers=answers, authorizer=authorizer, runs_elsewhere=runs_elsewhere
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://camgate")


def urls(live: LiveHls) -> list[str]:
    segment = live.segment(2)
    assert segment is not None
    session = live.session
    return [
        "/hls/cam/index.m3u8",
        "/hls/cam/index.m3u8?mode=plain",
        f"/hls/cam/index.m3u8?_HLS_msn={live.live_edge_msn}&_HLS_part=0",
        "/hls/cam/index.m3u8?_HLS_msn=abc",
        "/hls/cam/index.m3u8?_HLS_msn=999",
        f"/hls/cam/index.m3u8?_HLS_msn={(live.live_edge_msn or 0) + 1}",  # waits, then 503
        "/hls/nope/index.m3u8",
        f"/hls/cam/{session}/init-1.mp4",
        f"/hls/cam/{session}/init-7.mp4",
        f"/hls/cam/{session}/seg-2.m4s",
        f"/hls/cam/{session}/seg-40.m4s",
        f"/hls/cam/{session}/part-{segment.parts[1].index}.m4s",
        f"/hls/cam/{session}/part-{live.next_part_index}.m4s",  # the hint: waits, then 503
        "/hls/cam/000000000000/part-0.m4s",
    ]


async def test_it_answers_exactly_what_the_routes_answer() -> None:
    live = live_camera()
    answers = HlsAnswers(
        {"cam": live}.get, block_timeout_s=0.05, cors_origins=["https://nvr.example"]
    )
    routes = FastAPI()
    routes.include_router(create_hls_router(answers))
    fast = HlsFastPath(fallback, answers=answers, authorizer=open_server(), runs_elsewhere=here)
    for headers in ({}, {"Origin": "https://nvr.example"}, {"Origin": "https://evil.example"}):
        for url in urls(live):
            replies = []
            for app in (routes, fast):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://c") as http:
                    replies.append(await http.get(url, headers=headers))
            by_routes, by_fast = replies
            assert by_fast.status_code != FALLBACK_STATUS, url
            assert by_fast.status_code == by_routes.status_code, url
            assert by_fast.content == by_routes.content, url
            assert sorted(by_fast.headers.multi_items()) == sorted(
                by_routes.headers.multi_items()
            ), url


async def test_everything_else_goes_to_the_app() -> None:
    live = live_camera()
    async with fast_only(live, open_server()) as http:
        assert (await http.get("/hls/cam/index.m3u8")).status_code == 200
        for method, url in [
            ("POST", "/hls/cam/index.m3u8"),
            ("OPTIONS", "/hls/cam/index.m3u8"),
            ("HEAD", "/hls/cam/index.m3u8"),
            ("GET", "/hls/cam/index.m3u8/x"),
            ("GET", f"/hls/cam/{live.session}/part-x.m4s"),
            ("GET", "/api/streams/service"),
        ]:
            reply = await http.request(method, url)
            assert reply.status_code == FALLBACK_STATUS, (method, url)


async def test_only_what_the_access_check_lets_in_is_answered() -> None:
    live = live_camera()
    authorizer = Authorizer(TokenSet(f"viewer:{VIEWER}", None), ViewerSigner(b"k" * 32))
    signed = authorizer.signer.query("cam", int(time.time()) + 60)
    expired = authorizer.signer.query("cam", int(time.time()) - 1)
    other_camera = authorizer.signer.query("other", int(time.time()) + 60)
    async with fast_only(live, authorizer) as http:
        refused = [
            await http.get("/hls/cam/index.m3u8"),
            await http.get("/hls/cam/index.m3u8", headers={"Authorization": "Bearer " + "x" * 24}),
            await http.get(f"/hls/cam/index.m3u8?{expired}"),
            await http.get(f"/hls/cam/index.m3u8?{other_camera}"),
        ]
        with_token = await http.get(
            f"/hls/cam/{live.session}/seg-1.m4s", headers={"Authorization": f"Bearer {VIEWER}"}
        )
        with_signature = await http.get(f"/hls/cam/index.m3u8?{signed}")

    # The app answers refusals itself (401/403 in its envelope, tested with the routes).
    assert [reply.status_code for reply in refused] == [FALLBACK_STATUS] * 4
    assert with_token.status_code == 200
    assert with_token.headers["cache-control"] == "private, max-age=86400, immutable"
    assert with_signature.status_code == 200
    assert f"part-0.m4s?{signed}" in with_signature.text or f".m4s?{signed}" in with_signature.text


@pytest.mark.parametrize("tokens", ["", f"viewer:{VIEWER}"])
async def test_media_is_public_only_when_no_credentials_are_asked(tokens: str) -> None:
    live = live_camera()
    authorizer = Authorizer(TokenSet(tokens, None), ViewerSigner(b"k" * 32))
    async with fast_only(live, authorizer) as http:
        reply = await http.get(
            f"/hls/cam/{live.session}/init-1.mp4", headers={"Authorization": f"Bearer {VIEWER}"}
        )
    expected = "public" if not tokens else "private"
    assert reply.status_code == 200
    assert reply.headers["cache-control"].startswith(expected)


async def test_a_camera_another_node_runs_goes_to_the_app() -> None:
    live = live_camera()
    async with fast_only(live, open_server(), lambda _request, camera: camera == "cam") as http:
        reply = await http.get("/hls/cam/index.m3u8")
    assert reply.status_code == FALLBACK_STATUS  # redirected or relayed by the cluster routing
