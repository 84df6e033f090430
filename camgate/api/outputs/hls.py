"""HTTP routes serving each camera's LL-HLS playlist, init segments, segments and parts from memory.

A thin layer over ``camgate.outputs.hls.live.LiveHls``: it parses the blocking-reload query
(RFC 8216bis 6.2.5.2), awaits the live state and maps misses to HTTP statuses. It never touches
files, FFmpeg or the segmenter's internals. Every route needs a viewer token or a signed viewer
URL (see ``camgate.api.auth``); a signed playlist carries its signature on to every media URI.
Cross-origin players are allowed only for the origins in CAMGATE_CORS_ORIGINS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response

from camgate.api.auth import Access, access
from camgate.api.cluster import elsewhere
from camgate.api.errors import error_response
from camgate.api.guard import origin_key
from camgate.outputs.hls.live import LiveHls

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "video/mp4"  # Chromium's MSE via hls.js takes it for init, segments and parts
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


def needs_credentials(request: Request) -> bool:
    """Whether this request had to show a token or a signature (the server is not open)."""
    if getattr(request.state, "signed_query", ""):
        return True
    authorizer = getattr(request.app.state, "authorizer", None)
    return authorizer is not None and authorizer.tokens.configured


class BadRequest(Exception):
    """The blocking-reload query is malformed or asks too far ahead."""


def parse_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(raw)


def blocking_request(request: Request, live: LiveHls) -> tuple[int, int | None] | None:
    """(msn, part) a playlist request waits for, None if it does not block."""
    msn, part = parse_int(request, "_HLS_msn"), parse_int(request, "_HLS_part")
    if msn is None:
        if part is not None:
            raise BadRequest("_HLS_part requires _HLS_msn")
        return None
    edge = live.live_edge_msn
    if edge is not None and msn > edge + MSN_LOOKAHEAD:
        raise BadRequest(f"_HLS_msn {msn} is too far ahead of the live edge {edge}")
    return msn, part


def wants_low_latency(request: Request) -> bool:
    query = request.query_params
    return query.get("ll") not in ("0", "false", "no") and query.get("mode") != "plain"


class CorsPolicy:
    """Which web origins may fetch playback responses (none by default)."""

    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.keys = {key for origin in origins if (key := origin_key(origin))}

    def headers(self, request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None:
            return {}
        if self.any:
            return {"Access-Control-Allow-Origin": "*"}
        if origin_key(origin) in self.keys:
            return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        return {}


def create_hls_router(
    lookup: Callable[[str], LiveHls | None],
    *,
    demand: Callable[[str], Awaitable[LiveHls | None]] | None = None,
    block_timeout_s: float | None = None,
    cors_origins: list[str] | None = None,
) -> APIRouter:
    """Routes under /hls/{camera_id}/. ``block_timeout_s`` None means three target durations;
    ``demand`` (if given) wakes an idle on-demand camera for a playlist request and waits."""
    router = APIRouter()
    cors = CorsPolicy(cors_origins or [])

    def media(request: Request, live: LiveHls, data: bytes | memoryview) -> Response:
        live.note_request(len(data))
        cache = PRIVATE_MEDIA_CACHE if needs_credentials(request) else PUBLIC_MEDIA_CACHE
        headers = {**cors.headers(request), "Cache-Control": cache}
        return Response(content=data, media_type=MEDIA_TYPE, headers=headers)

    def failure(request: Request, status: int, message: str) -> Response:
        return error_response(
            status, message, {**cors.headers(request), "Cache-Control": MISS_CACHE}
        )

    def session_live(camera_id: str, session: str) -> LiveHls | None:
        """The camera's live output if `session` is its current stream session."""
        live = lookup(camera_id)
        return live if live is not None and live.session == session else None

    def timeout_for(live: LiveHls) -> float:
        if block_timeout_s is not None:
            return block_timeout_s
        return BLOCK_TARGET_DURATIONS * float(live.target_duration)

    @router.get("/hls/{camera_id}/index.m3u8")
    @access(Access.PLAY)
    async def playlist(camera_id: str, request: Request) -> Response:
        if (moved := await elsewhere(request, camera_id)) is not None:
            return moved  # another node of the fleet runs this camera
        live = lookup(camera_id)
        low_latency = wants_low_latency(request)
        if (live is None or not live.playable(low_latency)) and demand is not None:
            live = await demand(camera_id)
            if live is not None and not live.playable(low_latency):
                await live.wait_until_playable(timeout_for(live))
        if live is None or not live.playable(low_latency):
            return failure(request, 404, f"camera {camera_id} has no playable stream")
        try:
            block = blocking_request(request, live)
        except BadRequest as error:
            return failure(request, 400, str(error))
        if block is not None and not await live.wait_for_part(*block, timeout_for(live)):
            return failure(request, 503, "the requested part did not arrive in time")
        signed = getattr(request.state, "signed_query", "")
        data = live.playlist_bytes(low_latency, uri_query=signed)
        if data is None:
            return failure(request, 404, f"camera {camera_id} has no playable stream")
        live.note_request(len(data))
        headers = {**cors.headers(request), "Cache-Control": PLAYLIST_CACHE}
        return Response(content=data, media_type=PLAYLIST_TYPE, headers=headers)

    @router.get("/hls/{camera_id}/{session}/init-{init_id:int}.mp4")
    @access(Access.PLAY)
    async def init(camera_id: str, session: str, init_id: int, request: Request) -> Response:
        if (moved := await elsewhere(request, camera_id)) is not None:
            return moved
        live = session_live(camera_id, session)
        data = live.init(init_id) if live is not None else None
        if live is None or data is None:
            return failure(request, 404, f"no init segment {init_id} in this stream session")
        return media(request, live, data)

    @router.get("/hls/{camera_id}/{session}/seg-{msn:int}.m4s")
    @access(Access.PLAY)
    async def segment(camera_id: str, session: str, msn: int, request: Request) -> Response:
        live = session_live(camera_id, session)
        found = live.segment(msn) if live is not None else None
        if live is None or found is None:
            return failure(request, 404, f"no segment {msn} in this stream session")
        return media(request, live, found.data)

    @router.get("/hls/{camera_id}/{session}/part-{index:int}.m4s")
    @access(Access.PLAY)
    async def part(camera_id: str, session: str, index: int, request: Request) -> Response:
        live = session_live(camera_id, session)
        if live is None:
            return failure(request, 404, f"camera {camera_id} has no stream session {session}")
        found = live.part(index)
        # RFC 8216bis 6.2.6: a request for the preload-hinted part is held until it exists.
        if found is None and index == live.next_part_index:
            if not await live.wait_for_part_index(index, timeout_for(live)):
                return failure(request, 503, f"part {index} did not arrive in time")
            found = live.part(index)
        if found is None:
            return failure(request, 404, f"no part {index}")
        return media(request, live, found.data)

    @router.options("/hls/{camera_id}/{name:path}")
    @access(Access.PUBLIC)
    async def preflight(camera_id: str, name: str, request: Request) -> Response:
        # Without Access-Control-Allow-Origin the browser refuses the cross-origin request.
        allowed = cors.headers(request)
        headers = {**allowed, **PREFLIGHT_HEADERS} if allowed else {}
        return Response(status_code=204, headers=headers)

    return router
