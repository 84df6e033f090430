"""Relaying playback to the node of the fleet that runs the camera: HTTP and the MSE WebSocket.

A node that does not run a camera fetches the answer from its owner and hands it over as it
came: HLS playlists (blocking reloads included), parts, segments, snapshots, WHEP offers and
session requests, and the MSE WebSocket message by message. The client's credentials never
leave this node: no `Authorization` header and no cookie is sent on. A signed viewer query is
passed on as it is (every node has the same signing secret); otherwise this node, which has
already checked the client's token, signs a short-lived viewer query for that one camera and
takes it out of the owner's answer again, so the client sees what a single node would send.
Relayed requests carry `RELAYED_HEADER`, and a node never relays a relayed request again, so
two nodes whose views of the fleet briefly differ cannot bounce a request between them.

Imported only by a node with a database (`CAMGATE_DATABASE_URL`): it needs httpx and websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

import httpx
from fastapi import Request, Response, WebSocket
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from camgate.api.auth import ViewerSigner
from camgate.api.cluster import RELAYED_HEADER
from camgate.api.errors import error_response
from camgate.config import Settings
from camgate.tasks import cancel_and_wait

log = logging.getLogger("camgate.cluster")
# httpx logs every request URL at INFO and websockets its request line at DEBUG: a relayed
# URL carries a viewer signature.
QUIET_LOGGERS = ("httpx", "httpcore", "websockets")

SIGNATURE_TTL_S = 60  # the owner checks it once, when the request arrives
CONNECT_TIMEOUT_S = 3.0
KEPT_ALIVE = 64  # idle connections kept to the other nodes (LL-HLS asks several times a second)
REPLY_MARGIN_S = 5.0  # beyond an on-demand start and a blocking reload's own waits
# Sent on: what the owner needs to answer; Origin only where the owner applies CORS to it (a
# WebSocket or a WHEP POST from this node's page would look cross-site to the owner).
REQUEST_HEADERS = ("accept", "content-type")
SAFE_METHODS = ("GET", "HEAD")
REPLY_HEADERS = (
    "content-type",
    "cache-control",
    "retry-after",
    "location",
    "allow",
    "www-authenticate",
    "vary",
    "access-control-allow-origin",
    "access-control-expose-headers",
)
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # an MSE fragment holding a large keyframe
# RFC 6455 7.4: what the viewer is told when the owner cannot be reached or went away.
CLOSE_OWNER_UNREACHABLE = 4502
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
UNSENDABLE_CODES = (1005, 1006, 1015)  # reported locally, never sent in a close frame
CLOSE_TIMEOUT_S = 2.0
MAX_REASON_CHARS = 120


def owner_query(
    connection: HTTPConnection, signer: ViewerSigner, camera_id: str
) -> tuple[str, str]:
    """The query to send the owner, and the part of it this node added ("" if none)."""
    query = connection.url.query
    if getattr(connection.state, "signed_query", None):
        return query, ""  # the client's own signature: valid on every node
    minted = signer.query(camera_id, int(time.time()) + SIGNATURE_TTL_S)
    return (f"{query}&{minted}" if query else minted), minted


def relay_headers(method: str, headers: Mapping[str, str]) -> dict[str, str]:
    """What of a client's (lower-case) headers goes to the owner: never a credential."""
    kept = {name: headers[name] for name in REQUEST_HEADERS if name in headers}
    if method in SAFE_METHODS and "origin" in headers:
        kept["origin"] = headers["origin"]
    return kept | {RELAYED_HEADER: "1"}


def without(text: str, minted: str) -> str:
    """`text` (a playlist, a Location) with the query this node added taken out again."""
    if not minted:
        return text
    return text.replace(f"?{minted}&", "?").replace(f"?{minted}", "").replace(f"&{minted}", "")


class OwnerRelay:
    """One node's relay to the other nodes (a pool of kept-alive HTTP connections)."""

    def __init__(self, settings: Settings, signer: ViewerSigner) -> None:
        self.signer = signer
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        reply_s = settings.on_demand_start_timeout_s + settings.hls_block_timeout_s
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(reply_s + REPLY_MARGIN_S, connect=CONNECT_TIMEOUT_S),
            # Each relayed request holds one of this node's own connections (MAX_CONNECTIONS).
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=KEPT_ALIVE
            ),
            follow_redirects=True,  # the camera moved again meanwhile: the query goes along
            max_redirects=2,
            trust_env=False,  # nodes talk to each other directly, never through a proxy
        )
        self.open_timeout_s = reply_s + REPLY_MARGIN_S

    async def close(self) -> None:
        await self.client.aclose()

    async def http(self, request: Request, base: str, camera_id: str) -> Response:
        """The owner's answer to `request`, as the client would have had it from the owner."""
        query, minted = owner_query(request, self.signer, camera_id)
        headers = relay_headers(request.method, request.headers)
        body = None if request.method in SAFE_METHODS else await request.body()
        try:
            reply = await self.client.request(
                request.method, f"{base}{request.url.path}?{query}", headers=headers, content=body
            )
        except httpx.HTTPError as error:
            log.warning(
                "relaying %s %s to %s failed: %s",
                request.method,
                request.url.path,
                base,
                type(error).__name__,
            )
            return error_response(
                502, f"the node running camera {camera_id} did not answer", {"Retry-After": "1"}
            )
        kept = {k: without(v, minted) for k, v in reply.headers.items() if k in REPLY_HEADERS}
        content = reply.content
        if minted and reply.headers.get("content-type", "").startswith(PLAYLIST_TYPE):
            content = without(reply.text, minted).encode()
        return Response(content, reply.status_code, headers=kept)

    async def websocket(self, websocket: WebSocket, base: str, camera_id: str) -> None:
        """Serve the viewer's WebSocket from the owner's, message by message, until either
        side ends it; the owner's close code (4404, 4408, 1001...) reaches the viewer."""
        query, _ = owner_query(websocket, self.signer, camera_id)
        url = "ws" + base.removeprefix("http") + f"{websocket.url.path}?{query}"
        try:
            upstream = await connect(
                url,
                additional_headers={RELAYED_HEADER: "1"},
                compression=None,  # fMP4 does not deflate
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=self.open_timeout_s,
                proxy=None,
            )
        except InvalidStatus as error:
            # The owner refused the viewer (a signature it does not take): refuse the same.
            log.warning("the owner of %s refused a relayed viewer: %s", camera_id, error)
            await websocket.close(CLOSE_POLICY, "refused by the node running this camera")
            return
        except (OSError, TimeoutError, InvalidHandshake) as error:
            log.warning("relaying %s to %s failed: %s", camera_id, base, type(error).__name__)
            await websocket.accept()
            await _close(
                websocket, CLOSE_OWNER_UNREACHABLE, "the node running this camera did not answer"
            )
            return
        await websocket.accept()
        async with upstream:
            viewer_left = await _pump(websocket, upstream)
        if not viewer_left:
            code = upstream.close_code
            if code is None or code in UNSENDABLE_CODES:
                code, reason = CLOSE_GOING_AWAY, "the node running this camera went away"
            else:
                reason = upstream.close_reason or ""
            await _close(websocket, code, reason)


async def _pump(websocket: WebSocket, upstream: ClientConnection) -> bool:
    """Copy messages both ways until one side ends; True when it was the viewer."""
    down = asyncio.create_task(_owner_to_viewer(upstream, websocket))
    up = asyncio.create_task(_viewer_to_owner(websocket, upstream))
    try:
        done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait((down, up))
    return up in done and down not in done


async def _owner_to_viewer(upstream: ClientConnection, websocket: WebSocket) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in upstream:
            if isinstance(message, str):
                await websocket.send_text(message)
            else:
                await websocket.send_bytes(message)


async def _viewer_to_owner(websocket: WebSocket, upstream: ClientConnection) -> None:
    """What the viewer sends goes on (the owner ignores it); returns when the viewer leaves."""
    with contextlib.suppress(WebSocketDisconnect, ConnectionClosed, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            payload = message.get("bytes") or message.get("text")
            if payload is not None:
                await upstream.send(payload)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.client_state is not WebSocketState.CONNECTED:
        return
    with contextlib.suppress(TimeoutError, RuntimeError, OSError):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason[:MAX_REASON_CHARS])
