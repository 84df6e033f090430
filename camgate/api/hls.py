"""HTTP routes serving each camera's LL-HLS playlist, init segments, segments and parts from memory.

A thin layer over ``camgate.hls.live.LiveHls``: it parses the blocking-reload query
(RFC 8216bis 6.2.5.2), awaits the live state and maps misses to HTTP statuses. It never touches
files, FFmpeg or the segmenter's internals, and it sets CORS itself so players on other origins
work without app-wide middleware.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response

from camgate.api.errors import error_response
from camgate.hls.live import LiveHls

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MEDIA_TYPE = "video/mp4"  # Chromium's MSE via hls.js takes it for init, segments and parts
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "600",
}
# Media URIs repeat whenever a stream is started again (its counters start at 0), so a cached
# part-0 from the last session would be played against a new init segment: never reuse without
# asking. Everything is served from memory, so a refetch is cheap.
MEDIA_CACHE = "no-cache"
PLAYLIST_CACHE = "no-cache"
MSN_LOOKAHEAD = 2  # RFC 8216bis 6.2.5.2: _HLS_msn beyond the last segment + 2 is a bad request
BLOCK_TARGET_DURATIONS = 3  # RFC 8216bis 6.2.5.2: give up after three target durations


class BadRequest(Exception):
    """The blocking-reload query is malformed or asks too far ahead."""


def parse_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
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


def media(data: bytes) -> Response:
    headers = {**CORS_HEADERS, "Cache-Control": MEDIA_CACHE}
    return Response(content=data, media_type=MEDIA_TYPE, headers=headers)


def failure(status: int, message: str) -> Response:
    return error_response(status, message, dict(CORS_HEADERS))


def create_hls_router(
    lookup: Callable[[str], LiveHls | None], *, block_timeout_s: float | None = None
) -> APIRouter:
    """Routes under /hls/{camera_id}/. ``block_timeout_s`` None means three target durations."""
    router = APIRouter()

    def timeout_for(live: LiveHls) -> float:
        if block_timeout_s is not None:
            return block_timeout_s
        return BLOCK_TARGET_DURATIONS * float(live.target_duration)

    @router.get("/hls/{camera_id}/index.m3u8")
    async def playlist(camera_id: str, request: Request) -> Response:
        live = lookup(camera_id)
        low_latency = wants_low_latency(request)
        if live is None or not live.playable(low_latency):
            return failure(404, f"camera {camera_id} has no playable stream")
        try:
            block = blocking_request(request, live)
        except BadRequest as error:
            return failure(400, str(error))
        if block is not None and not await live.wait_for_part(*block, timeout_for(live)):
            return failure(503, "the requested part did not arrive in time")
        text = live.playlist(low_latency)
        if text is None:
            return failure(404, f"camera {camera_id} has no playable stream")
        headers = {**CORS_HEADERS, "Cache-Control": PLAYLIST_CACHE}
        return Response(content=text, media_type=PLAYLIST_TYPE, headers=headers)

    @router.get("/hls/{camera_id}/init-{init_id:int}.mp4")
    async def init(camera_id: str, init_id: int) -> Response:
        live = lookup(camera_id)
        data = live.init(init_id) if live is not None else None
        return media(data) if data is not None else failure(404, f"no init segment {init_id}")

    @router.get("/hls/{camera_id}/seg-{msn:int}.m4s")
    async def segment(camera_id: str, msn: int) -> Response:
        live = lookup(camera_id)
        found = live.segment(msn) if live is not None else None
        return media(found.data) if found is not None else failure(404, f"no segment {msn}")

    @router.get("/hls/{camera_id}/part-{index:int}.m4s")
    async def part(camera_id: str, index: int) -> Response:
        live = lookup(camera_id)
        if live is None:
            return failure(404, f"camera {camera_id} has no stream")
        found = live.part(index)
        # RFC 8216bis 6.2.6: a request for the preload-hinted part is held until it exists.
        if found is None and index == live.next_part_index:
            if not await live.wait_for_part_index(index, timeout_for(live)):
                return failure(503, f"part {index} did not arrive in time")
            found = live.part(index)
        return media(found.data) if found is not None else failure(404, f"no part {index}")

    @router.options("/hls/{camera_id}/{name}")
    async def preflight(camera_id: str, name: str) -> Response:
        return Response(status_code=204, headers=PREFLIGHT_HEADERS)

    return router
