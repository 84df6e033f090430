"""A small bounded cache whose misses are computed once however many callers ask at once.

`SingleFlightCache.get(key, make)` returns the cached value for `key`, or joins the computation
already running for it, or starts one (an asyncio task the cache owns). Errors of the types given
as `remembered` are cached like values (a computation that failed that way would fail again).
A caller that goes away never cancels a computation others wait for; `cancel()` ends every
running one. It knows nothing of JPEGs or FFmpeg.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from enum import StrEnum
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Outcome(StrEnum):
    """How a value was got: from the cache, from a running computation, or by a new one."""

    HIT = "hit"
    JOINED = "joined"
    MADE = "made"


class SingleFlightCache(Generic[K, V]):
    def __init__(
        self,
        max_entries: int,
        *,
        size_of: Callable[[V], int] = lambda _: 0,
        remembered: tuple[type[Exception], ...] = (),
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._size_of = size_of
        self._remembered = remembered
        self._values: OrderedDict[K, V | Exception] = OrderedDict()
        self._running: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K, make: Callable[[], Awaitable[V]]) -> tuple[V, Outcome]:
        if key in self._values:
            self._values.move_to_end(key)
            found = self._values[key]
            if isinstance(found, Exception):
                raise found.with_traceback(None)  # each raise would lengthen the old traceback
            return found, Outcome.HIT
        task = self._running.get(key)
        outcome = Outcome.JOINED
        if task is None:
            task = asyncio.create_task(self._make(key, make))
            task.add_done_callback(self._finished)
            self._running[key] = task
            outcome = Outcome.MADE
        # shield: a caller cancelled (a client that hung up) leaves the computation running.
        return await asyncio.shield(task), outcome

    async def _make(self, key: K, make: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await make()
        except self._remembered as error:
            self._store(key, error)
            raise
        finally:
            self._running.pop(key, None)
        self._store(key, value)
        return value

    def _store(self, key: K, value: V | Exception) -> None:
        self._values[key] = value
        while len(self._values) > self.max_entries:
            self._values.popitem(last=False)

    @staticmethod
    def _finished(task: asyncio.Task[V]) -> None:
        # Every waiter may have gone: retrieve the outcome so asyncio does not log it as lost.
        if not task.cancelled():
            task.exception()

    @property
    def running(self) -> int:
        return len(self._running)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def bytes_held(self) -> int:
        values = self._values.values()
        return sum(self._size_of(value) for value in values if not isinstance(value, Exception))

    def clear(self) -> None:
        """Forget the cached values (computations still running store theirs when done)."""
        self._values.clear()

    def cancel(self) -> None:
        """Forget everything and cancel every running computation."""
        self._values.clear()
        for task in list(self._running.values()):
            task.cancel()
        self._running.clear()
