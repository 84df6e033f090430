"""The ASGI app factory: `create_app(settings)` wires the manager, store and routers together.

Resources are created in the lifespan and torn down in it: on SIGTERM/SIGINT uvicorn runs the
shutdown, which stops every FFmpeg child before the process exits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from camgate import __version__
from camgate.api import cameras, ops, seed, web
from camgate.api.errors import install_error_handlers
from camgate.api.hls import create_hls_router
from camgate.config import Settings
from camgate.manager import StreamManager
from camgate.store import SqliteStore, Store


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """A camgate app; `store` defaults to SQLite under the data directory."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager = StreamManager(
            settings, store=store or SqliteStore(settings.data_dir / "camgate.db")
        )
        registry = CollectorRegistry()
        registry.register(ops.StreamCollector(manager))
        app.state.manager = manager
        app.state.metrics_registry = registry
        await manager.open()
        try:
            yield
        finally:
            await manager.close()

    app = FastAPI(title="camgate", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(seed.router)
    app.include_router(cameras.router)
    app.include_router(ops.router)
    app.include_router(
        create_hls_router(
            lambda camera_id: app.state.manager.live(camera_id),
            block_timeout_s=settings.hls_block_timeout_s,
        )
    )
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")
    return app
