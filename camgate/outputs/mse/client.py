"""One viewer's bounded queue: what the MSE sink offers it, what its sender takes out.

The stream task offers every fragment; the viewer's sender takes them in order. When a viewer
falls behind by more than ``max_bytes``, its queued fragments are dropped and it skips to the
next keyframe (it could not decode anything before one); after ``MAX_OVERFLOWS`` overflows
within ``OVERFLOW_WINDOW_S`` it is ended as too slow. A queue never holds more than one
keyframe interval beyond ``max_bytes``, and the fragments are the stream's own bytes objects,
shared by every queue, never copied. Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum

# Three overflows in half a minute: a viewer whose link cannot carry the stream, not a hiccup.
MAX_OVERFLOWS = 3
OVERFLOW_WINDOW_S = 30.0


class ClientEnd(StrEnum):
    """Why the sink stopped serving a viewer (the route turns it into a close code)."""

    TOO_SLOW = "too slow: the connection did not keep up with the stream"
    STREAM_STOPPED = "the camera's stream stopped"


class Delivery(Enum):
    """Where a viewer's queue is: each fragment offered is queued only while LIVE."""

    WAITING = "waiting"  # for the first keyframe: after joining or a new init segment
    LIVE = "live"
    SKIPPING = "skipping"  # to the next keyframe, after an overflow; fragments count as drops
    ENDED = "ended"


@dataclass(frozen=True)
class Message:
    """A text (JSON control) or binary (init segment, fragment) WebSocket message."""

    payload: str | bytes
    media: bool = False  # a fragment: may be dropped on overflow; control messages never are

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass
class QueueCounters:
    """Totals over every viewer of one sink, for its stats."""

    bytes_sent: int = 0
    queue_overflows: int = 0
    queue_drops: int = 0
    clients_dropped: int = 0


class ClientQueue:
    def __init__(
        self,
        max_bytes: int,
        counters: QueueCounters | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.counters = counters or QueueCounters()
        self.state = Delivery.WAITING
        self.end: ClientEnd | None = None
        self.bytes_queued = 0
        self._messages: deque[Message] = deque()
        self._media_queued = 0  # fragments among the messages
        self._overflows_at: deque[float] = deque()
        self._monotonic = monotonic
        self._queued = asyncio.Event()
        self._ended = asyncio.Event()

    # --- from the sink (the stream's task) ---

    def start(self, control: Iterable[Message], fragments: Iterable[bytes]) -> None:
        """Joining: the init announcement and segment, then the fragments since the keyframe."""
        for message in control:
            self._push(message)
        for data in fragments:
            self._push(Message(data, media=True))
            self.state = Delivery.LIVE

    def restart(self, control: Iterable[Message]) -> None:
        """A new init segment or a discontinuity: queue the notice, wait for a keyframe."""
        if self.state is Delivery.ENDED:
            return
        for message in control:
            self._push(message)
        self.state = Delivery.WAITING

    def offer(self, data: bytes, start_point: bool) -> None:
        """A fragment of the stream; ``start_point`` when a viewer can start decoding there."""
        if self.state is Delivery.ENDED:
            return
        if self.state is not Delivery.LIVE and not start_point:
            self._refuse()
            return
        if self._media_queued and self.bytes_queued + len(data) > self.max_bytes:
            self._overflow()
            if self.state is Delivery.ENDED or not start_point:
                self._refuse()
                return
        self.state = Delivery.LIVE
        self._push(Message(data, media=True))

    def finish(self, end: ClientEnd) -> None:
        """Stop serving this viewer: drop what is queued and wake its sender."""
        if self.state is Delivery.ENDED:
            return
        self.state = Delivery.ENDED
        self.end = end
        self._messages.clear()
        self.bytes_queued = self._media_queued = 0
        self._ended.set()
        self._queued.set()

    # --- from the viewer's sender ---

    def take(self) -> Message | None:
        if not self._messages:
            return None
        message = self._messages.popleft()
        self.bytes_queued -= message.size
        self._media_queued -= message.media
        self.counters.bytes_sent += message.size
        return message

    async def next(self) -> Message | None:
        """The next message, waiting for one; None once the viewer is ended."""
        while (message := self.take()) is None and self.state is not Delivery.ENDED:
            self._queued.clear()
            await self._queued.wait()
        return message

    async def wait_ended(self) -> ClientEnd | None:
        await self._ended.wait()
        return self.end

    # --- internals ---

    def _push(self, message: Message) -> None:
        self._messages.append(message)
        self.bytes_queued += message.size
        self._media_queued += message.media
        self._queued.set()

    def _refuse(self) -> None:
        if self.state is Delivery.SKIPPING:
            self.counters.queue_drops += 1

    def _overflow(self) -> None:
        """Drop the queued fragments (keep control messages); end a viewer that keeps failing."""
        now = self._monotonic()
        self._overflows_at.append(now)
        while now - self._overflows_at[0] > OVERFLOW_WINDOW_S:
            self._overflows_at.popleft()
        self.counters.queue_overflows += 1
        kept = [message for message in self._messages if not message.media]
        self.counters.queue_drops += self._media_queued
        self._messages = deque(kept)
        self.bytes_queued = sum(message.size for message in kept)
        self._media_queued = 0
        self.state = Delivery.SKIPPING
        if len(self._overflows_at) >= MAX_OVERFLOWS:
            self.counters.clients_dropped += 1
            self.finish(ClientEnd.TOO_SLOW)
