"""Playback of a camera that another node of the fleet runs: a redirect there, or a proxy.

The query is kept as it is, so a signed viewer URL stays valid on the owner (every node has the
same CAMGATE_VIEWER_SECRET); a player follows the 307 for the playlist and then fetches media
from the owner directly, since playlist URIs are relative. On a single node this does nothing.
"""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from camgate.config import Settings
from camgate.manager import StreamManager

PROXY_HEADERS = ("authorization", "origin")
PROXY_REPLY_HEADERS = ("content-type", "cache-control", "access-control-allow-origin", "vary")
PROXY_MARGIN_S = 5.0  # beyond a blocking playlist reload's own wait


def owner_url(request: Request, camera_id: str) -> str | None:
    """The base URL of the node that runs `camera_id`, when that is not this node."""
    manager: StreamManager | None = getattr(request.app.state, "manager", None)
    if manager is None or manager.placement is None:
        return None
    return manager.placement.remote_owner(camera_id)


async def elsewhere(request: Request, camera_id: str) -> Response | None:
    """A redirect to (or the owner's own answer for) a camera run elsewhere; None if here."""
    base = owner_url(request, camera_id)
    if base is None:
        return None
    target = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    settings: Settings = request.app.state.settings
    if settings.cluster_playback == "redirect":
        return RedirectResponse(target, status_code=307)
    return await _proxy(request, target, settings.hls_block_timeout_s + PROXY_MARGIN_S)


async def _proxy(request: Request, target: str, timeout_s: float) -> Response:
    import httpx  # only a node configured to proxy needs it

    headers = {k: v for k, v in request.headers.items() if k.lower() in PROXY_HEADERS}
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            reply = await client.get(target, headers=headers)
    except httpx.HTTPError:
        return Response(status_code=502, content=b"the node running this camera did not answer")
    kept = {k: v for k, v in reply.headers.items() if k.lower() in PROXY_REPLY_HEADERS}
    return Response(content=reply.content, status_code=reply.status_code, headers=kept)
