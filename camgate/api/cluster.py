"""Playback of a camera that another node of the fleet runs: sent to the owner, or relayed.

`CAMGATE_CLUSTER_PLAYBACK` says which, with what a client can follow in mind:

- `redirect` (the default): a 307 to the same path and query on the owner's advertised URL, for
  a request that can follow one: a signed viewer link (the signature is valid on every node), a
  player outside a browser page, the `/watch` page opened with a signed link (the page and then
  all its requests move to the owner). What cannot follow a redirect is relayed instead
  (`camgate.api.proxy`): a WebSocket (browsers do not follow redirects there), a request with
  an `Authorization` header (clients drop it on a redirect to another host, and a token is
  never sent on), and a request from a script of a web page (a redirect to another origin
  would need CORS on the owner, which the browser then asks with `Origin: null`).
- `proxy`: every playback request is relayed, so viewers only ever need to reach one node.

Every playback route (HLS, WHEP, snapshots: `PLAYBACK_ROUTES`) and the player page go through
`route_to_owner`, an app-wide dependency that runs after the access check, so a route needs no
code of its own for this; the WebSocket route calls `relayed_websocket` before it accepts. A
request another node relayed is never relayed again. On a single node this does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from fastapi import Request, Response, WebSocket
from fastapi.responses import RedirectResponse
from starlette.requests import HTTPConnection

from camgate.api.auth import SIGNATURE_PARAMS, Access, Authorizer, Verdict, access_of
from camgate.config import Settings
from camgate.manager import StreamManager

if TYPE_CHECKING:
    from camgate.api.proxy import OwnerRelay

RELAYED_HEADER = "x-camgate-relayed"  # on a request one node relays to another
WATCH_ROUTE = "/watch/{camera_id}"
# The routes whose answer comes from the camera's stream (its media), by route path. Others,
# such as the player page's state feed, are answered by any node from the fleet's status.
PLAYBACK_ROUTES = ("/hls/", "/whep/", "/api/cameras/{camera_id}/snapshot.jpg")
# Sec-Fetch-Mode of a page script's request (fetch, XHR, hls.js). Redirected to another origin,
# it would need CORS on the owner, and the browser sends `Origin: null` after such a redirect.
SCRIPT_FETCH_MODES = ("cors", "same-origin")


class PlaysElsewhere(Exception):
    """Raised by `route_to_owner` to answer a request with the owner's redirect or reply."""

    def __init__(self, response: Response) -> None:
        super().__init__("the camera runs on another node")
        self.response = response


async def route_to_owner(connection: HTTPConnection) -> None:
    """App-wide dependency: a playback request for a camera another node runs is answered
    (`PlaysElsewhere`) with a redirect to it or its relayed answer, before the route runs."""
    camera_id = connection.path_params.get("camera_id")
    if not isinstance(connection, Request) or not isinstance(camera_id, str):
        return
    path = str(getattr(connection.scope.get("route"), "path", ""))
    if path == WATCH_ROUTE:
        page = watch_elsewhere(connection, camera_id)
        if page is not None:
            raise PlaysElsewhere(page)
        return
    if not path.startswith(PLAYBACK_ROUTES):
        return
    if access_of(connection.scope.get("endpoint")) is not Access.PLAY:
        return
    answer = await elsewhere(connection, camera_id)
    if answer is not None:
        raise PlaysElsewhere(answer)


async def answer_elsewhere(_request: Request, error: Exception) -> Response:
    """The exception handler of `PlaysElsewhere`."""
    assert isinstance(error, PlaysElsewhere)
    return error.response


def owner_url(connection: HTTPConnection, camera_id: str) -> str | None:
    """The base URL of the node that runs `camera_id`, when that is not this node. None too for
    a request another node relayed here: relaying it on could bounce it between two nodes
    whose views of the fleet differ for a moment; this node answers it itself."""
    manager: StreamManager | None = getattr(connection.app.state, "manager", None)
    if manager is None or manager.placement is None or RELAYED_HEADER in connection.headers:
        return None
    return manager.placement.remote_owner(camera_id)


def must_relay(playback: str, headers: Mapping[str, str]) -> bool:
    """True when a request (its lower-case `headers`) cannot or must not follow a redirect to
    the owner, in playback mode `playback` (CAMGATE_CLUSTER_PLAYBACK)."""
    if playback == "proxy" or "authorization" in headers:
        return True
    return headers.get("sec-fetch-mode") in SCRIPT_FETCH_MODES


async def elsewhere(request: Request, camera_id: str) -> Response | None:
    """A redirect to (or the owner's own answer for) a camera run elsewhere; None if here."""
    base = owner_url(request, camera_id)
    if base is None:
        return None
    settings: Settings = request.app.state.settings
    if must_relay(settings.cluster_playback, request.headers):
        return await _relay(request).http(request, base, camera_id)
    target = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(target, status_code=307)


async def relayed_websocket(websocket: WebSocket, camera_id: str) -> bool:
    """Serve a WebSocket for a camera run elsewhere from its owner; False if it runs here."""
    base = owner_url(websocket, camera_id)
    if base is None:
        return False
    await _relay(websocket).websocket(websocket, base, camera_id)
    return True


def watch_elsewhere(request: Request, camera_id: str) -> Response | None:
    """In redirect mode, the player page opened with a valid signed link for a camera run
    elsewhere moves to the owner, where the page's requests are then all served. Without a
    signature (a browser with a token, which lives on this origin only) the page plays here."""
    settings: Settings = request.app.state.settings
    base = owner_url(request, camera_id)
    if base is None or settings.cluster_playback != "redirect":
        return None
    exp, sig = (request.query_params.get(name) for name in SIGNATURE_PARAMS)
    authorizer: Authorizer = request.app.state.authorizer
    if exp is None or sig is None or authorizer.signer.verify(camera_id, exp, sig) != Verdict.VALID:
        return None
    return RedirectResponse(f"{base}{request.url.path}?{request.url.query}", status_code=307)


def open_relay(
    settings: Settings, authorizer: Authorizer, manager: StreamManager
) -> OwnerRelay | None:
    """The relay of a node with a placement (its HTTP connections to the others); None alone."""
    if manager.placement is None:
        return None
    from camgate.api.proxy import OwnerRelay  # httpx and websockets: only a fleet needs them

    return OwnerRelay(settings, authorizer.signer)


def _relay(connection: HTTPConnection) -> OwnerRelay:
    relay: OwnerRelay | None = getattr(connection.app.state, "relay", None)
    assert relay is not None, "a node with a placement has a relay (create_app)"
    return relay
