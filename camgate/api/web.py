"""The browser pages: the dashboard, the player page and their static files (no CDN), and the
player page's feed of its camera's state.

The files are served from memory under versioned URLs (`camgate.api.assets`). The player page
of an unknown camera is an HTTP 404 page, but only for a request that may know
which cameras exist (open mode, a token, or a valid signed viewer URL): anyone else gets the
same page for every id, so camera ids cannot be probed from outside.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import (
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from camgate.api.assets import Assets
from camgate.api.auth import Access, Authorizer, Verdict, access
from camgate.api.deps import Manager
from camgate.errors import NotFound
from camgate.events import Event
from camgate.manager import StreamManager
from camgate.status import StreamStatus

STATIC_DIR = Path(str(files("camgate.web") / "static"))
ASSETS = Assets.load(STATIC_DIR)
PAGE_HEADERS = {"Cache-Control": "no-cache"}
# The feed sends the camera's state again at least this often when it changed without an
# event (a camera another node runs), and a comment line otherwise, which keeps proxies open.
FEED_REFRESH_S = 5.0

router = APIRouter(tags=["player"])

_NOT_FOUND_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>No camera {id} · camgate</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{camgate_css}">
  <link rel="stylesheet" href="{watch_css}">
</head>
<body>
  <main class="player">
    <header class="bar">
      <h1 id="camera">{id}</h1>
      <span id="state" class="state" data-state="error" role="status">no such camera</span>
    </header>
    <p class="notice" id="notice">There is no camera <strong>{id}</strong> on this camgate.
      <a href="/">See the cameras there are</a>.</p>
  </main>
</body>
</html>
"""


@router.get("/", include_in_schema=False)
@access(Access.PUBLIC)
async def index() -> Response:
    dashboard = ASSETS.get("index.html")
    if dashboard is not None:
        return HTMLResponse(dashboard.body, headers=PAGE_HEADERS)
    return RedirectResponse("/docs")


@router.get("/docs", include_in_schema=False)
@access(Access.PUBLIC)
async def docs() -> HTMLResponse:
    """The interactive API docs (Swagger UI, vendored: works offline)."""
    return HTMLResponse(ASSETS.page("docs.html"), headers=PAGE_HEADERS)


@router.get("/watch/{camera_id}", include_in_schema=False)
@access(Access.PUBLIC)
async def watch(camera_id: str, request: Request, manager: Manager) -> Response:
    if _may_know(request, camera_id) and not _exists(manager, camera_id):
        page = _NOT_FOUND_PAGE.format(
            id=html.escape(camera_id),
            camgate_css=ASSETS.url("camgate.css"),
            watch_css=ASSETS.url("watch.css"),
        )
        return HTMLResponse(page, status_code=404, headers=PAGE_HEADERS)
    return HTMLResponse(ASSETS.page("watch.html"), headers=PAGE_HEADERS)


@router.get("/watch/{camera_id}/events")
@access(Access.PLAY)
async def watch_events(camera_id: str, request: Request, manager: Manager) -> StreamingResponse:
    """Server-sent events for the player page: `state` with the camera's state, the reason it
    does not stream and whether browsers can play it, at once and at every change; `deleted`
    when the camera is gone. A signed viewer URL gets the reason without FFmpeg's message."""
    manager.get(camera_id)  # an unknown camera is a 404 before the stream opens
    detailed = _has_token_access(request.app.state.authorizer, request)

    async def feed() -> AsyncIterator[str]:
        # Subscribe before reading the state: no change between the two is missed.
        with manager.bus.subscription() as queue:
            yield ": camgate player feed\n\n"
            sent: dict[str, Any] | None = None
            while not await request.is_disconnected():
                try:
                    view = player_view(manager.status(camera_id), detailed)
                except NotFound:
                    yield _event("deleted", {"cameraId": camera_id})
                    return
                if view != sent:
                    yield _event("state", view)
                    sent = view
                if not await _next_event_for(queue, camera_id, FEED_REFRESH_S):
                    yield ": still here\n\n"  # and the state is read again

    return StreamingResponse(
        feed(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def player_view(status: StreamStatus, detailed: bool) -> dict[str, Any]:
    """What the player page needs to know about its camera (and nothing more)."""
    codecs = status.codecs
    return {
        "cameraId": status.cameraId,
        "state": str(status.state),
        "onDemand": status.onDemand,
        "reason": status.reason,
        "message": status.lastError if detailed else None,
        "nextRetryAt": status.nextRetryAt,
        "codecs": codecs.output,
        "audio": codecs.audio.codec if codecs.audio is not None else None,
        "audioOutput": _audio_output(status),
        "browserPlayback": status.browserPlayback.model_dump(mode="json"),
        "transcodes": status.transcodes.model_dump(mode="json"),
    }


def _audio_output(status: StreamStatus) -> bool | None:
    """Whether viewers get sound: known once the output codecs are (null before)."""
    if status.codecs.output is None:
        return None
    return "mp4a" in status.codecs.output


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


async def _next_event_for(queue: asyncio.Queue[Event], camera_id: str, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for an event about `camera_id` (others are skipped)."""
    deadline = time.monotonic() + timeout_s
    while (left_s := deadline - time.monotonic()) > 0:
        try:
            event = await asyncio.wait_for(queue.get(), left_s)
        except TimeoutError:
            return False
        if event.camera_id == camera_id:
            return True
    return False


def _exists(manager: StreamManager, camera_id: str) -> bool:
    try:
        manager.get(camera_id)
    except NotFound:
        return False
    return True


def _has_token_access(authorizer: Authorizer, request: Request) -> bool:
    """Open mode, or a token: the request may read the camera's whole status."""
    return not authorizer.tokens.configured or authorizer.role(request.headers) is not None


def _may_know(request: Request, camera_id: str) -> bool:
    """Whether this request may learn that a camera does not exist."""
    authorizer: Authorizer = request.app.state.authorizer
    if _has_token_access(authorizer, request):
        return True
    exp, sig = request.query_params.get("exp"), request.query_params.get("sig")
    if exp is None or sig is None:
        return False
    return authorizer.signer.verify(camera_id, exp, sig) is Verdict.VALID
