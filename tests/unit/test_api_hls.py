"""The HLS routes on a real ASGI app: content types, caching, CORS, errors and blocking reload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from camgate.api.auth import Authorizer, TokenSet, ViewerSigner
from camgate.api.outputs.hls import HlsAnswers, create_hls_router
from camgate.api.outputs.hls_fast import HlsFastPath
from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from camgate.outputs.hls.live import LiveHls
from camgate.outputs.hls.segmenter import Part, Segmenter

DATA = Path(__file__).parent / "data"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


class Camera:
    """A LiveHls fed from the captured FFmpeg output on demand."""

    def __init__(self) -> None:
        init, *fragments = Fmp4Reader().feed((DATA / "av_every_frame_ff5.mp4").read_bytes())
        assert isinstance(init, InitSegment)
        self.live = LiveHls(Segmenter(1.0, 0.2, 5))
        self.live.set_init(init)
        self.fragments: Iterator[Fragment] = iter(f for f in fragments if isinstance(f, Fragment))

    def next_part(self) -> Part:
        for fragment in self.fragments:
            parts = self.live.add_fragment(fragment)
            if parts:
                return parts[-1]
        raise AssertionError("the fixture ran out before a part completed")

    def segments(self, count: int) -> None:
        while len(self.live.segmenter.segments) < count:
            self.next_part()

    def url(self, name: str) -> str:
        """A media URL of this camera's current stream session."""
        return f"/hls/cam/{self.live.session}/{name}"


@pytest.fixture
def camera() -> Camera:
    return Camera()


# Every test runs twice: through the FastAPI routes, and through the fast path below the
# framework that serves the same URLs in the app (camgate.api.outputs.hls_fast).
WAYS = ["routes", "fast path"]


def client_for(
    cameras: dict[str, LiveHls],
    block_timeout_s: float,
    cors_origins: list[str] | None = None,
    way: str = "routes",
) -> httpx.AsyncClient:
    app = FastAPI()
    answers = HlsAnswers(cameras.get, block_timeout_s=block_timeout_s, cors_origins=cors_origins)
    app.include_router(create_hls_router(answers))
    if way == "fast path":
        open_server = Authorizer(TokenSet("", None), ViewerSigner(b"k" * 32))
        app.add_middleware(HlsFastPath, answers=answers, authorizer=open_server)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://camgate")


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(camera: Camera, way: str) -> AsyncIterator[httpx.AsyncClient]:
    idle = Camera()  # init segment only: not playable yet
    async with client_for({"cam": camera.live, "idle": idle.live}, 5.0, way=way) as http:
        yield http


async def still_pending(task: asyncio.Task[httpx.Response]) -> bool:
    for _ in range(20):
        await asyncio.sleep(0)  # let the request reach its wait
    return not task.done()


async def test_playlist_headers_and_body(camera: Camera, client: httpx.AsyncClient) -> None:
    camera.segments(3)
    response = await client.get("/hls/cam/index.m3u8")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(PLAYLIST_TYPE)
    assert response.headers["cache-control"] == "no-cache"
    assert "access-control-allow-origin" not in response.headers  # no CORS unless configured
    assert response.text == camera.live.playlist()
    assert "#EXT-X-PART:" in response.text


@pytest.mark.parametrize("query", ["ll=0", "mode=plain"])
async def test_plain_playlist_on_request(
    camera: Camera, client: httpx.AsyncClient, query: str
) -> None:
    camera.segments(2)
    response = await client.get(f"/hls/cam/index.m3u8?{query}")

    assert response.status_code == 200
    assert "#EXT-X-PART" not in response.text and "/seg-1.m4s" in response.text


async def test_media_is_served_from_memory(camera: Camera, client: httpx.AsyncClient) -> None:
    camera.segments(3)
    segment = camera.live.segment(2)
    assert segment is not None
    expected = {
        camera.url("init-1.mp4"): camera.live.init(1),
        camera.url("seg-2.m4s"): segment.data,
        camera.url(f"part-{segment.parts[2].index}.m4s"): segment.parts[2].data,
    }
    for url, body in expected.items():
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.content == body
        assert response.headers["content-type"] == "video/mp4"
        # The session in the path makes every URI name the same bytes for good.
        assert response.headers["cache-control"] == "public, max-age=86400, immutable"
        assert "access-control-allow-origin" not in response.headers


async def test_another_session_is_not_served(camera: Camera, client: httpx.AsyncClient) -> None:
    camera.segments(2)
    for name in ("init-1.mp4", "seg-0.m4s", "part-0.m4s"):
        assert (await client.get(camera.url(name))).status_code == 200
        stale = await client.get(f"/hls/cam/{'0' * 12}/{name}")
        assert stale.status_code == 404, name
        assert stale.headers["cache-control"] == "no-store"
        assert (await client.get(f"/hls/cam/{name}")).status_code in (404, 405)


async def test_viewers_woken_by_one_part_share_one_rendering(
    camera: Camera, client: httpx.AsyncClient
) -> None:
    camera.segments(2)
    msn, part = camera.live.segmenter.next_position
    waiting = [
        asyncio.create_task(client.get(f"/hls/cam/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"))
        for _ in range(50)
    ]
    assert await still_pending(waiting[0])
    before = camera.live.renders

    camera.next_part()
    bodies = {(await asyncio.wait_for(task, 2.0)).content for task in waiting}

    assert len(bodies) == 1
    assert camera.live.renders - before == 1


@pytest.mark.parametrize(
    "url",
    [
        "/hls/nope/index.m3u8",
        "/hls/idle/index.m3u8",
        "/hls/cam/{session}/init-7.mp4",
        "/hls/cam/{session}/seg-40.m4s",
        "/hls/cam/{session}/part-900.m4s",
        "/hls/nope/{session}/part-0.m4s",
    ],
)
async def test_misses_are_404_json(camera: Camera, client: httpx.AsyncClient, url: str) -> None:
    camera.segments(2)
    response = await client.get(url.format(session=camera.live.session))

    assert response.status_code == 404
    assert response.json()["success"] is False and response.json()["error"]


@pytest.mark.parametrize(
    "query", ["_HLS_part=1", "_HLS_msn=40", "_HLS_msn=abc", "_HLS_msn=1&_HLS_part=-1"]
)
async def test_bad_blocking_requests_are_400(
    camera: Camera, client: httpx.AsyncClient, query: str
) -> None:
    camera.segments(2)
    response = await client.get(f"/hls/cam/index.m3u8?{query}")

    assert response.status_code == 400
    assert response.json()["success"] is False


async def test_msn_two_ahead_of_the_live_edge_is_accepted(camera: Camera, way: str) -> None:
    camera.segments(2)
    edge = camera.live.live_edge_msn
    assert edge is not None
    async with client_for({"cam": camera.live}, 0.05, way=way) as http:
        waited = await http.get(f"/hls/cam/index.m3u8?_HLS_msn={edge + 2}")
        too_far = await http.get(f"/hls/cam/index.m3u8?_HLS_msn={edge + 3}")
    assert (waited.status_code, too_far.status_code) == (503, 400)


async def test_blocking_reload_times_out_with_503(camera: Camera, way: str) -> None:
    camera.segments(2)
    msn, part = camera.live.segmenter.next_position
    async with client_for({"cam": camera.live}, 0.05, way=way) as http:
        response = await http.get(f"/hls/cam/index.m3u8?_HLS_msn={msn}&_HLS_part={part}")
    assert response.status_code == 503


async def test_blocking_reload_returns_when_the_part_arrives(
    camera: Camera, client: httpx.AsyncClient
) -> None:
    camera.segments(2)
    msn, part = camera.live.segmenter.next_position
    request = asyncio.create_task(
        client.get(f"/hls/cam/index.m3u8?_HLS_msn={msn}&_HLS_part={part}")
    )
    assert await still_pending(request)

    arrived = camera.next_part()
    response = await asyncio.wait_for(request, 2.0)

    assert response.status_code == 200
    session = camera.live.session
    assert f'URI="{session}/part-{arrived.index}.m4s"' in response.text
    assert f'PRELOAD-HINT:TYPE=PART,URI="{session}/part-{arrived.index + 1}.m4s"' in response.text


async def test_hinted_part_is_held_until_complete(
    camera: Camera, client: httpx.AsyncClient
) -> None:
    camera.segments(2)
    hinted = camera.live.next_part_index
    request = asyncio.create_task(client.get(camera.url(f"part-{hinted}.m4s")))
    assert await still_pending(request)

    arrived = camera.next_part()
    response = await asyncio.wait_for(request, 2.0)

    assert response.status_code == 200
    assert response.content == arrived.data


async def test_preflight_and_cors_only_for_configured_origins(camera: Camera, way: str) -> None:
    camera.segments(2)
    preflight = {"Access-Control-Request-Method": "GET"}
    async with client_for({"cam": camera.live}, 1.0, ["https://nvr.example"], way) as http:
        allowed = await http.options(
            "/hls/cam/index.m3u8", headers={"Origin": "https://nvr.example", **preflight}
        )
        foreign = await http.options(
            "/hls/cam/index.m3u8", headers={"Origin": "https://evil.example", **preflight}
        )
        media = await http.get("/hls/cam/index.m3u8", headers={"Origin": "https://nvr.example"})
        other = await http.get("/hls/cam/index.m3u8", headers={"Origin": "https://evil.example"})

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://nvr.example"
    assert "GET" in allowed.headers["access-control-allow-methods"]
    assert "Authorization" in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-origin" not in foreign.headers
    assert media.headers["access-control-allow-origin"] == "https://nvr.example"
    assert "access-control-allow-origin" not in other.headers
    async with client_for({"cam": camera.live}, 1.0, ["https://nvr.example"], way) as http:
        media_preflight = await http.options(
            camera.url("part-0.m4s"), headers={"Origin": "https://nvr.example", **preflight}
        )
    assert media_preflight.status_code == 204
    assert media_preflight.headers["access-control-allow-origin"] == "https://nvr.example"


async def test_unicode_digits_in_blocking_query_are_400(
    camera: Camera, client: httpx.AsyncClient
) -> None:
    camera.segments(2)
    for query in ("_HLS_msn=%C2%B2", "_HLS_msn=%D9%A3", "_HLS_msn=0&_HLS_part=%C2%B9"):
        response = await client.get(f"/hls/cam/index.m3u8?{query}")
        assert response.status_code == 400, query
        assert "_HLS_" in response.json()["error"]
