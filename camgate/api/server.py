"""Running the app under uvicorn with connection limits that a hostile client cannot outlast.

uvicorn caps concurrent connections (`limit_concurrency`) and closes idle keep-alive connections,
but it waits for a request's headers forever: 150 sockets that each send half a request line
would hold their slots until the process ends. `HeaderDeadline` closes any connection whose
request headers are not complete within REQUEST_HEADER_TIMEOUT seconds.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from camgate.config import Settings

log = logging.getLogger("camgate.server")

# File descriptors kept for FFmpeg pipes, the database, logs and the event loop.
FDS_PER_STREAM = 8
FDS_RESERVED = 64


class HeaderDeadline:
    """Mixin for a uvicorn HTTP protocol: no connection may wait for its headers too long."""

    header_timeout_s = 10.0
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self._awaiting_headers():
            if self._header_deadline is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _awaiting_headers(self) -> bool:
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return False  # closed, or handed over to a WebSocket protocol
        return self.cycle is None or bool(self.cycle.response_complete)

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._header_deadline = loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers():
            self.transport.close()


def guarded_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's default HTTP protocol with `HeaderDeadline` mixed in."""
    return type(
        "GuardedHTTPProtocol",
        (HeaderDeadline, AutoHTTPProtocol),
        {"header_timeout_s": header_timeout_s},
    )


def connection_limit(settings: Settings) -> int:
    """MAX_CONNECTIONS, after raising the soft descriptor limit as far as the hard one allows,
    lowered if the descriptors would not be enough for it and every stream."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    room = soft - FDS_RESERVED - FDS_PER_STREAM * settings.max_concurrent_streams
    limit = min(settings.max_connections, max(room, 8))
    if limit < settings.max_connections:
        log.warning(
            "MAX_CONNECTIONS lowered from %d to %d: only %d file descriptors are allowed",
            settings.max_connections,
            limit,
            soft,
        )
    return limit


def serve(app: FastAPI, settings: Settings, listener: socket.socket) -> None:
    """Run `app` on the already bound `listener` until SIGTERM/SIGINT, with camgate's
    connection limits."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings.header_timeout_s),
        limit_concurrency=connection_limit(settings),
        timeout_keep_alive=settings.keepalive_timeout_s,
        log_config=None,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        server_header=False,
        # Event streams and blocking playlist requests never finish on their own: do not let
        # them hold up shutdown (the streams' FFmpeg children are stopped after this).
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(config).run(sockets=[listener])
