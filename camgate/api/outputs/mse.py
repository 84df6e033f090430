"""The WebSocket route of the MSE output: ``/ws/{camera_id}`` sends a camera's fMP4 as it comes.

A thin layer over ``camgate.outputs.mse.live.MseSink``: it subscribes a viewer, runs one sender
that empties the viewer's queue into the socket (the stream's task only ever appends to that
queue, so a slow socket never holds it up), notices when the viewer leaves, and closes with a
code that says why. It needs a viewer token or a signed viewer URL (``camgate.api.auth``), which
refuses the handshake itself. Messages: see ``camgate.outputs.mse.messages``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, WebSocket

from camgate.api.auth import Access, access
from camgate.api.cluster import relayed_websocket
from camgate.errors import CamgateError, CapacityReached
from camgate.outputs.mse.client import ClientEnd, ClientQueue
from camgate.outputs.mse.live import MseSink
from camgate.tasks import cancel_and_wait

# RFC 6455 7.4: 1001 going away; 4000-4999 are the application's own, here HTTP status + 4000.
CLOSE_GOING_AWAY = 1001
CLOSE_NO_STREAM = 4404
CLOSE_TOO_SLOW = 4408
CLOSE_REFUSED = 4400
CLOSE_NO_CAPACITY = 4503
CLOSE_CODES = {ClientEnd.STREAM_STOPPED: CLOSE_GOING_AWAY, ClientEnd.TOO_SLOW: CLOSE_TOO_SLOW}
# A viewer that stopped reading never takes the close frame: do not wait for it longer.
CLOSE_TIMEOUT_S = 2.0
MAX_REASON_CHARS = 120  # a close frame's reason must fit in 123 bytes


async def send_queue(websocket: WebSocket, client: ClientQueue) -> None:
    """Send what the sink queues for this viewer, in order, until it is ended."""
    while (message := await client.next()) is not None:
        if isinstance(message.payload, bytes):
            await websocket.send_bytes(message.payload)
        else:
            await websocket.send_text(message.payload)


async def until_viewer_leaves(websocket: WebSocket) -> None:
    """Read (and ignore) what the viewer sends, until it closes the connection."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def serve_viewer(websocket: WebSocket, client: ClientQueue) -> ClientEnd | None:
    """Run the viewer's sender until the viewer leaves (None) or the sink ends it."""
    tasks = {
        asyncio.create_task(send_queue(websocket, client)),
        asyncio.create_task(until_viewer_leaves(websocket)),
        asyncio.create_task(client.wait_ended()),
    }
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(tasks)
    return client.end


async def close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason[:MAX_REASON_CHARS])
    except (TimeoutError, RuntimeError, OSError):
        pass  # the viewer is gone or not reading: the server drops the connection


def create_mse_router(demand: Callable[[str], Awaitable[MseSink | None]]) -> APIRouter:
    """The route; ``demand`` returns a camera's MSE sink (waking an on-demand camera)."""
    router = APIRouter()

    @router.websocket("/ws/{camera_id}")
    @access(Access.PLAY)
    async def stream(websocket: WebSocket, camera_id: str) -> None:
        if await relayed_websocket(websocket, camera_id):
            return  # another node of the fleet runs this camera
        await websocket.accept()
        try:
            sink = await demand(camera_id)
        except CamgateError as error:
            code = CLOSE_NO_CAPACITY if isinstance(error, CapacityReached) else CLOSE_REFUSED
            await close(websocket, code, str(error))
            return
        if sink is None:
            await close(websocket, CLOSE_NO_STREAM, f"camera {camera_id} has no stream")
            return
        client = sink.subscribe()
        try:
            end = await serve_viewer(websocket, client)
        finally:
            sink.unsubscribe(client)
        if end is not None:
            await close(websocket, CLOSE_CODES[end], end.value)

    return router
