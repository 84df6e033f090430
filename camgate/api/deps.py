"""Request-scoped access to the objects the app owns (set up in the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from camgate.manager import StreamManager


def get_manager(request: Request) -> StreamManager:
    manager: StreamManager = request.app.state.manager
    return manager


Manager = Annotated[StreamManager, Depends(get_manager)]
