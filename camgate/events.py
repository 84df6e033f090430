"""The in-process event bus: streams publish, logs, the SSE endpoint and metrics subscribe.

Publishing never blocks and never raises: a slow subscriber loses its oldest events instead of
holding up a stream. Events never carry a camera URL with credentials.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

log = logging.getLogger("camgate.events")

EventListener = Callable[["Event"], None]


class EventType(StrEnum):
    """Every kind of event camgate publishes (the SSE `event:` names)."""

    STATE = "state"  # any state change; carries the new `state` and the whole `status`
    STARTED = "started"  # an FFmpeg run began (pid, transcoding)
    READY = "ready"  # the outputs can serve viewers
    STALLED = "stalled"  # no media for STALL_TIMEOUT
    EXITED = "exited"  # an FFmpeg run ended (code, reason, detail)
    RESTARTING = "restarting"  # waiting before the next attempt (attempt, delay, reason)
    RESTARTED = "restarted"  # restarted through the API
    STOPPED = "stopped"
    FAILED = "failed"  # gave up after RESTART_MAX_ATTEMPTS
    DELETED = "deleted"


@dataclass(frozen=True)
class Event:
    """One thing that happened to one camera (or to the service when camera_id is None)."""

    type: EventType
    camera_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": str(self.type),
            "cameraId": self.camera_id,
            "time": self.time.isoformat(),
            "data": self.data,
        }


class EventBus:
    """Synchronous fan-out to listeners plus bounded async queues for streaming subscribers."""

    def __init__(self, queue_size: int = 256) -> None:
        self._listeners: list[EventListener] = []
        self._queues: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size
        self._seq = itertools.count(1)

    def subscribe(self, listener: EventListener) -> Callable[[], None]:
        """Call `listener` for every event; returns the function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def publish(self, type_: EventType, camera_id: str | None, **data: Any) -> Event:
        event = Event(type_, camera_id, data, seq=next(self._seq))
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break a stream
                log.exception("event listener failed", extra={"camera": camera_id})
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)
        return event

    @contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[Event]]:
        """A bounded queue that receives every event published while the block runs."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    async def stream(self) -> AsyncIterator[Event]:
        """Every event from the first iteration on, until the consumer stops iterating."""
        with self.subscription() as queue:
            while True:
                yield await queue.get()

    @property
    def subscriber_count(self) -> int:
        return len(self._listeners) + len(self._queues)
