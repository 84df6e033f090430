"""Ending asyncio tasks a component started: cancel them and wait until every one has ended."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and wait for all of them; what they returned or raised is dropped. The
    caller's own cancellation still reaches it (unlike awaiting a task under a suppressed
    CancelledError, which would swallow it)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
