"""HTTP route serving a camera's latest keyframe as a JPEG (Home Assistant's still image URL).

A thin layer over ``camgate.outputs.snapshot.SnapshotSink``: it checks the `width` query, finds
the camera's sink and maps what cannot be served to 404 (unknown camera) or 503 with Retry-After
(not streaming, no keyframe yet, a keyframe that did not decode). It never runs FFmpeg itself.
Like HLS it needs a viewer token or a signed viewer URL (see ``camgate.api.auth``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response

from camgate.api.auth import Access, access
from camgate.api.errors import ERROR_REPLIES, error_response
from camgate.errors import InvalidInput
from camgate.manager import StreamManager
from camgate.outputs.snapshot import SnapshotOutput, SnapshotSink, SnapshotUnavailable

MIN_WIDTH = 16
MAX_WIDTH = 3840
RETRY_AFTER_S = 1  # a keyframe comes every GOP; a client should ask again soon
# Every keyframe is a new picture under the same URL: a cache must ask each time.
SNAPSHOT_CACHE = "no-cache"
SnapshotLookup = Callable[[str], Awaitable[SnapshotSink | None]]


def parse_width(raw: str | None) -> int | None:
    """The `width` query: ASCII digits from MIN_WIDTH to MAX_WIDTH, else InvalidInput (400)."""
    if raw is None:
        return None
    width = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else 0
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise InvalidInput(f"width must be whole pixels from {MIN_WIDTH} to {MAX_WIDTH}")
    return width


async def snapshot_sink(manager: StreamManager, camera_id: str) -> SnapshotSink | None:
    """The camera's snapshot sink while it streams (an idle on-demand camera is woken and
    waited for); NotFound (404) for an unknown camera."""
    manager.get(camera_id)
    sink = await manager.demand(camera_id, SnapshotOutput.name)
    return sink if isinstance(sink, SnapshotSink) else None


def create_snapshot_router(lookup: SnapshotLookup) -> APIRouter:
    router = APIRouter()

    def unavailable(message: str) -> Response:
        return error_response(503, message, {"Retry-After": str(RETRY_AFTER_S)})

    @router.get(
        "/api/cameras/{camera_id}/snapshot.jpg",
        response_class=Response,
        responses={
            200: {"content": {"image/jpeg": {}}, "description": "the latest keyframe"},
            **{code: ERROR_REPLIES[code] for code in (400, 401, 403, 404)},
            503: {**ERROR_REPLIES[503], "description": "no keyframe yet (see Retry-After)"},
        },
    )
    @access(Access.PLAY)
    async def snapshot(camera_id: str, request: Request) -> Response:
        """The camera's latest keyframe as a JPEG; `?width=W` scales it down, keeping the
        aspect ratio."""
        width = parse_width(request.query_params.get("width"))
        sink = await lookup(camera_id)
        if sink is None:
            return unavailable(f"camera {camera_id} is not streaming")
        try:
            jpeg = await sink.jpeg(width)
        except SnapshotUnavailable as error:
            return unavailable(str(error))
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": SNAPSHOT_CACHE})

    return router
