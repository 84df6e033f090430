"""HTTP answers for each camera's LL-HLS playlist, init segments, segments and parts, from memory.

A thin layer over ``camgate.outputs.hls.live.LiveHls``: it parses the blocking-reload query
(RFC 8216bis 6.2.5.2), awaits the live state and maps misses to HTTP statuses. It never touches
files, FFmpeg or the segmenter's internals. Every route needs a viewer token or a signed viewer
URL (see ``camgate.api.auth``); a signed playlist carries its signature on to every media URI.
Cross-origin players are allowed only for the origins in CAMGATE_CORS_ORIGINS.

`HlsAnswers` computes each answer from what a request brings (`Ask`) and knows no web framework.
Two callers serve them: the FastAPI routes of `create_hls_router` (the API schema, the app-wide
access check and the cluster's routing to a camera's owner) and `camgate.api.outputs.hls_fast`,
which answers the same URLs below the framework, where a viewer's ten requests a second cost a
fraction of the CPU (docs/benchmarks.md, viewer fan-out).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response
from starlette.requests import HTTPConnection

from camgate.api.auth import Access, Authorizer, access
from camgate.api.errors import error_body
from camgate.api.guard import origin_key
from camgate.outputs.hls.live import LiveHls

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "video/mp4"  # Chromium's MSE via hls.js takes it for init, segments and parts
ERROR_TYPE = "application/json"
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization",
    "Access-Control-Max-Age": "600",
}
# Media URIs are unique per stream session (the session is their directory, see
# camgate.outputs.hls.playlist): the bytes behind one never change, so caches may keep them for
# good (RFC 8246 immutable). Shared caches only where the server asks for no credentials: a
# proxy that stored a token-protected response would hand it to anyone asking for the URL
# (docs/llhls.md). Playlists change with every part: never served from a cache.
MEDIA_MAX_AGE_S = 86400
PUBLIC_MEDIA_CACHE = f"public, max-age={MEDIA_MAX_AGE_S}, immutable"
PRIVATE_MEDIA_CACHE = f"private, max-age={MEDIA_MAX_AGE_S}, immutable"
PLAYLIST_CACHE = "no-cache"
MISS_CACHE = "no-store"  # a part asked for too early exists a moment later
MSN_LOOKAHEAD = 2  # RFC 8216bis 6.2.5.2: _HLS_msn beyond the last segment + 2 is a bad request
BLOCK_TARGET_DURATIONS = 3  # RFC 8216bis 6.2.5.2: give up after three target durations


@dataclass(frozen=True)
class Ask:
    """What an HLS request brings: its query, its Origin header, the signed query it was let in
    with ("" for a token or an open server) and whether it had to show credentials."""

    query: Mapping[str, str] = field(default_factory=dict)
    origin: str | None = None
    signed_query: str = ""
    credentials: bool = False


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes | memoryview
    media_type: str
    headers: dict[str, str]


class BadRequest(Exception):
    """The blocking-reload query is malformed or asks too far ahead."""


def parse_int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(raw)


def blocking_request(query: Mapping[str, str], live: LiveHls) -> tuple[int, int | None] | None:
    """(msn, part) a playlist request waits for, None if it does not block."""
    msn, part = parse_int(query, "_HLS_msn"), parse_int(query, "_HLS_part")
    if msn is None:
        if part is not None:
            raise BadRequest("_HLS_part requires _HLS_msn")
        return None
    edge = live.live_edge_msn
    if edge is not None and msn > edge + MSN_LOOKAHEAD:
        raise BadRequest(f"_HLS_msn {msn} is too far ahead of the live edge {edge}")
    return msn, part


def wants_low_latency(query: Mapping[str, str]) -> bool:
    return query.get("ll") not in ("0", "false", "no") and query.get("mode") != "plain"


class CorsPolicy:
    """Which web origins may fetch playback responses (none by default)."""

    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.keys = {key for origin in origins if (key := origin_key(origin))}

    def headers(self, origin: str | None) -> dict[str, str]:
        if origin is None:
            return {}
        if self.any:
            return {"Access-Control-Allow-Origin": "*"}
        if origin_key(origin) in self.keys:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}


class HlsAnswers:
    """The answers of the HLS URLs. ``block_timeout_s`` None means three target durations;
    ``demand`` (if given) wakes an idle on-demand camera for a playlist request and waits."""

    def __init__(
        self,
        lookup: Callable[[str], LiveHls | None],
        *,
        demand: Callable[[str], Awaitable[LiveHls | None]] | None = None,
        block_timeout_s: float | None = None,
        cors_origins: list[str] | None = None,
    ) -> None:
        self.lookup = lookup
        self.demand = demand
        self.block_timeout_s = block_timeout_s
        self.cors = CorsPolicy(cors_origins or [])

    def _media(self, ask: Ask, live: LiveHls, data: bytes | memoryview) -> Answer:
        live.note_request(len(data))
        cache = PRIVATE_MEDIA_CACHE if ask.credentials else PUBLIC_MEDIA_CACHE
        headers = {**self.cors.headers(ask.origin), "Cache-Control": cache}
        return Answer(200, data, MEDIA_TYPE, headers)

    def failure(self, ask: Ask, status: int, message: str) -> Answer:
        headers = {**self.cors.headers(ask.origin), "Cache-Control": MISS_CACHE}
        return Answer(status, error_body(message), ERROR_TYPE, headers)

    def _session_live(self, camera_id: str, session: str) -> LiveHls | None:
        """The camera's live output if `session` is its current stream session."""
        live = self.lookup(camera_id)
        return live if live is not None and live.session == session else None

    def timeout_for(self, live: LiveHls) -> float:
        if self.block_timeout_s is not None:
            return self.block_timeout_s
        return BLOCK_TARGET_DURATIONS * float(live.target_duration)

    async def playlist(self, camera_id: str, ask: Ask) -> Answer:
        live = self.lookup(camera_id)
        low_latency = wants_low_latency(ask.query)
        if (live is None or not live.playable(low_latency)) and self.demand is not None:
            live = await self.demand(camera_id)
            if live is not None and not live.playable(low_latency):
                await live.wait_until_playable(self.timeout_for(live))
        if live is None or not live.playable(low_latency):
            return self.failure(ask, 404, f"camera {camera_id} has no playable stream")
        try:
            block = blocking_request(ask.query, live)
        except BadRequest as error:
            return self.failure(ask, 400, str(error))
        if block is not None and not await live.wait_for_part(*block, self.timeout_for(live)):
            return self.failure(ask, 503, "the requested part did not arrive in time")
        data = live.playlist_bytes(low_latency, uri_query=ask.signed_query)
        if data is None:
            return self.failure(ask, 404, f"camera {camera_id} has no playable stream")
        live.note_request(len(data))
        headers = {**self.cors.headers(ask.origin), "Cache-Control": PLAYLIST_CACHE}
        return Answer(200, data, PLAYLIST_TYPE, headers)

    def init(self, camera_id: str, session: str, init_id: int, ask: Ask) -> Answer:
        live = self._session_live(camera_id, session)
        data = live.init(init_id) if live is not None else None
        if live is None or data is None:
            return self.failure(ask, 404, f"no init segment {init_id} in this stream session")
        return self._media(ask, live, data)

    def segment(self, camera_id: str, session: str, msn: int, ask: Ask) -> Answer:
        live = self._session_live(camera_id, session)
        found = live.segment(msn) if live is not None else None
        if live is None or found is None:
            return self.failure(ask, 404, f"no segment {msn} in this stream session")
        return self._media(ask, live, found.data)

    async def part(self, camera_id: str, session: str, index: int, ask: Ask) -> Answer:
        live = self._session_live(camera_id, session)
        if live is None:
            return self.failure(ask, 404, f"camera {camera_id} has no stream session {session}")
        found = live.part(index)
        # RFC 8216bis 6.2.6: a request for the preload-hinted part is held until it exists.
        if found is None and index == live.next_part_index:
            if not await live.wait_for_part_index(index, self.timeout_for(live)):
                return self.failure(ask, 503, f"part {index} did not arrive in time")
            found = live.part(index)
        if found is None:
            return self.failure(ask, 404, f"no part {index}")
        return self._media(ask, live, found.data)


def ask_of(request: HTTPConnection, authorizer: Authorizer | None) -> Ask:
    """The `Ask` of a request `authorizer`'s access check let in (it leaves a signed query on
    `state`); no authorizer is an app without access control."""
    signed = getattr(request.state, "signed_query", "")
    credentials = bool(signed) or (authorizer is not None and authorizer.tokens.configured)
    return Ask(request.query_params, request.headers.get("origin"), signed, credentials)


def route_ask(request: Request) -> Ask:
    """`ask_of` for a route: the app's own authorizer."""
    return ask_of(request, getattr(request.app.state, "authorizer", None))


def respond(answer: Answer) -> Response:
    return Response(
        content=answer.body,
        status_code=answer.status,
        media_type=answer.media_type,
        headers=answer.headers,
    )


def create_hls_router(answers: HlsAnswers) -> APIRouter:
    """Routes under /hls/{camera_id}/ (a camera another node runs never reaches them: the
    app-wide `camgate.api.cluster.route_to_owner` answers it first)."""
    router = APIRouter()

    @router.get("/hls/{camera_id}/index.m3u8")
    @access(Access.PLAY)
    async def playlist(camera_id: str, request: Request) -> Response:
        return respond(await answers.playlist(camera_id, route_ask(request)))

    @router.get("/hls/{camera_id}/{session}/init-{init_id:int}.mp4")
    @access(Access.PLAY)
    async def init(camera_id: str, session: str, init_id: int, request: Request) -> Response:
        return respond(answers.init(camera_id, session, init_id, route_ask(request)))

    @router.get("/hls/{camera_id}/{session}/seg-{msn:int}.m4s")
    @access(Access.PLAY)
    async def segment(camera_id: str, session: str, msn: int, request: Request) -> Response:
        return respond(answers.segment(camera_id, session, msn, route_ask(request)))

    @router.get("/hls/{camera_id}/{session}/part-{index:int}.m4s")
    @access(Access.PLAY)
    async def part(camera_id: str, session: str, index: int, request: Request) -> Response:
        return respond(await answers.part(camera_id, session, index, route_ask(request)))

    @router.options("/hls/{camera_id}/{name:path}")
    @access(Access.PUBLIC)
    async def preflight(camera_id: str, name: str, request: Request) -> Response:
        # Without Access-Control-Allow-Origin the browser refuses the cross-origin request.
        allowed = answers.cors.headers(request.headers.get("origin"))
        headers = {**allowed, **PREFLIGHT_HEADERS} if allowed else {}
        return Response(status_code=204, headers=headers)

    return router
