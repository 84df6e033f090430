"""The WHEP routes of the WebRTC output (RFC 9725): an SDP offer in, an SDP answer out.

- ``POST /whep/{camera_id}`` with an ``application/sdp`` offer: ``201 Created``, the answer and
  a ``Location`` naming the session (which keeps a signed viewer URL's query, so the player can
  end the session with the same rights it started it with).
- ``DELETE`` on that location ends the session.
- ``PATCH`` (trickle ICE) answers ``405``: aiortc gathers every candidate before it answers, so
  the answer is complete and a client sends its offer once its own gathering is done.

Limits answer ``503`` with Retry-After, an unusable camera or offer ``400``. Playback access:
a viewer token or a signed viewer URL, as for HLS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response

from camgate.api.auth import Access, access
from camgate.errors import InvalidInput, NotFound
from camgate.outputs.webrtc import WebRtcSink, WhepSessions

SDP_TYPE = "application/sdp"
MAX_OFFER_BYTES = 32_768  # a browser's offer is 3-8 kB


def create_whep_router(
    demand: Callable[[str], Awaitable[WebRtcSink | None]],
    sessions: Callable[[], WhepSessions],
) -> APIRouter:
    """The routes; ``demand`` returns a camera's WebRTC sink (waking an on-demand camera)."""
    router = APIRouter(tags=["webrtc"])

    @router.post("/whep/{camera_id}", status_code=201, response_class=Response)
    @access(Access.PLAY)
    async def offer(request: Request, camera_id: str) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != SDP_TYPE:
            return Response(
                "send the WHEP offer as Content-Type: application/sdp", 415, media_type="text/plain"
            )
        body = await request.body()
        if len(body) > MAX_OFFER_BYTES:
            raise InvalidInput(f"SDP offer larger than {MAX_OFFER_BYTES} bytes")
        sink = await demand(camera_id)
        if sink is None:
            raise NotFound(f"camera {camera_id} has no stream")
        answer = await sessions().open(camera_id, sink, body.decode("utf-8", "replace"))
        location = f"/whep/{camera_id}/{answer.session_id}"
        signed = getattr(request.state, "signed_query", None)
        headers = {"Location": f"{location}?{signed}" if signed else location}
        return Response(answer.sdp, 201, headers=headers, media_type=SDP_TYPE)

    @router.delete("/whep/{camera_id}/{session_id}", status_code=200, response_class=Response)
    @access(Access.PLAY)
    async def end(camera_id: str, session_id: str) -> Response:
        await sessions().close(camera_id, session_id)
        return Response(status_code=200)

    @router.patch("/whep/{camera_id}/{session_id}", status_code=405, response_class=Response)
    @access(Access.PLAY)
    async def trickle(camera_id: str, session_id: str) -> Response:
        sessions().get(camera_id, session_id)
        return Response(
            "trickle ICE is not supported: send the offer with every candidate",
            405,
            headers={"Allow": "DELETE"},
            media_type="text/plain",
        )

    return router
