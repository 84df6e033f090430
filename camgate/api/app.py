"""The ASGI app factory: `create_app(settings)` wires the manager, store and routers together.

Resources are created in the lifespan and torn down in it: on SIGTERM/SIGINT uvicorn runs the
shutdown, which stops every FFmpeg child before the process exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from camgate import __version__
from camgate.api import cameras, ops, seed, web
from camgate.api.assets import AssetsFastPath
from camgate.api.auth import Authorizer, authorize
from camgate.api.cluster import PlaysElsewhere, answer_elsewhere, open_relay, route_to_owner
from camgate.api.errors import install_error_handlers
from camgate.api.guard import (
    ASGIApp,
    Receive,
    RequestGuard,
    Scope,
    Send,
    default_allowed_hosts,
    split_list,
)
from camgate.api.outputs.hls import HlsAnswers, create_hls_router
from camgate.api.outputs.hls_fast import HlsFastPath
from camgate.api.outputs.mse import create_mse_router
from camgate.api.outputs.snapshot import create_snapshot_router, snapshot_sink
from camgate.api.outputs.whep import create_whep_router
from camgate.camera_file import DeclaredCamera
from camgate.config import Settings
from camgate.loop_lag import LoopLagMonitor
from camgate.manager import StreamManager
from camgate.outputs.hls import HlsOutput, LiveHls
from camgate.outputs.mse import MseSink
from camgate.outputs.webrtc import WebRtcSink, WhepSessions
from camgate.outputs.webrtc.ice import split_addresses
from camgate.reload import CameraFileReloader
from camgate.runtime import Runtime
from camgate.store import Store


def create_app(
    settings: Settings,
    store: Store | None = None,
    declared: list[DeclaredCamera] | None = None,
    *,
    runtime: Runtime | None = None,
) -> FastAPI:
    """A camgate app built from `runtime`, by default `Runtime.open(settings)`: the SQLite store
    under the data directory and the cameras of CAMGATE_CONFIG (`store` and `declared` replace
    those, for tests and library use)."""
    built = runtime or Runtime.open(settings, store=store, declared=declared)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager = built.manager()
        registry = CollectorRegistry()
        registry.register(ops.StreamCollector(manager))
        loop_lag = LoopLagMonitor(registry)
        loop_lag.start()
        app.state.manager = manager
        app.state.relay = open_relay(settings, authorizer, manager)  # None on a single node
        app.state.metrics_registry = registry
        app.state.whep = WhepSessions(
            settings.webrtc_max_viewers,
            settings.webrtc_ice_servers,
            split_addresses(settings.webrtc_address),
            settings.webrtc_port_range,
        )
        await app.state.whep.start()
        await manager.open(built.declared)
        reloader = None
        if settings.config_file is not None and built.declared is not None:
            reloader = CameraFileReloader(settings.config_file, manager)
            reloader.start()
        app.state.camera_file = reloader
        try:
            yield
        finally:
            if reloader is not None:
                await reloader.stop()
            await app.state.whep.close_all()
            await manager.close()
            if app.state.relay is not None:
                await app.state.relay.close()
            await loop_lag.stop()

    authorizer = Authorizer.from_settings(settings)
    app = CamgateApp(
        title="camgate",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(authorize), Depends(route_to_owner)],
        docs_url=None,  # served from vendored files by camgate.api.web (no CDN)
        redoc_url=None,
    )
    app.state.authorizer = authorizer
    app.state.settings = settings
    install_error_handlers(app)
    app.add_exception_handler(PlaysElsewhere, answer_elsewhere)
    app.include_router(seed.router)
    app.include_router(cameras.router)
    app.include_router(ops.router)
    hls_answers = HlsAnswers(
        lambda camera_id: hls_sink(app.state.manager, camera_id),
        demand=lambda camera_id: demanded(app.state.manager, camera_id, LiveHls),
        block_timeout_s=settings.hls_block_timeout_s,
        cors_origins=split_list(settings.cors_origins),
    )
    app.include_router(create_hls_router(hls_answers))
    app.include_router(create_snapshot_router(lambda id_: snapshot_sink(app.state.manager, id_)))
    app.include_router(create_mse_router(lambda id_: demanded(app.state.manager, id_, MseSink)))
    app.include_router(
        create_whep_router(
            lambda id_: demanded(app.state.manager, id_, WebRtcSink), lambda: app.state.whep
        )
    )
    app.include_router(web.router)
    # The files are answered from memory by the assets fast path; this mount answers the rest
    # of /static as before (other methods, unknown files, requests under a root path).
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    app.front = RequestGuard(
        AssetsFastPath(
            HlsFastPath(app.framework, answers=hls_answers, authorizer=authorizer),
            assets=web.ASSETS,
        ),
        authorizer=authorizer,
        allowed_hosts=[
            *default_allowed_hosts(settings.host),
            *split_list(settings.allowed_hosts),
        ],
        cors_origins=split_list(settings.cors_origins),
        max_body_bytes=settings.max_body_bytes,
    )
    return app


class CamgateApp(FastAPI):
    """FastAPI behind camgate's ASGI front: every request meets the request guard first, and
    the pages' files and the HLS URLs are then answered by fast paths without the framework's
    middleware, routing and telemetry (camgate.api.assets, camgate.api.outputs.hls_fast);
    everything else goes on to FastAPI."""

    front: ASGIApp | None = None

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # as the framework sets it: the front reads the app's state too
        if self.front is None:
            await self.framework(scope, receive, send)
            return
        await self.front(scope, receive, send)


SinkT = TypeVar("SinkT", LiveHls, MseSink, WebRtcSink)


def hls_sink(manager: StreamManager, camera_id: str) -> LiveHls | None:
    sink = manager.sink(camera_id, HlsOutput.name)
    return sink if isinstance(sink, LiveHls) else None


async def demanded(manager: StreamManager, camera_id: str, kind: type[SinkT]) -> SinkT | None:
    """The camera's sink of that output for a viewer (waking an idle on-demand camera)."""
    sink = await manager.demand(camera_id, kind.name)
    return sink if isinstance(sink, kind) else None
