"""The MSE output of one camera: the current init segment, the latest keyframe's group of
pictures, and a bounded queue per connected viewer.

The stream task calls `set_init`, `add_fragment`, `discontinuity` and `close`; each only appends
to queues and never waits, so a slow viewer can never hold up the stream or the other outputs.
It is the MSE output's `MediaSink` (see ``camgate.outputs.sink``) and knows nothing of
WebSockets: ``camgate.api.outputs.mse`` runs one sender per viewer that empties its queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from camgate.config import Settings
from camgate.fmp4 import Fragment, InitSegment
from camgate.outputs.mse.client import ClientEnd, ClientQueue, Message, QueueCounters
from camgate.outputs.mse.gop import GopCache
from camgate.outputs.mse.messages import discontinuity_message, init_message
from camgate.outputs.sink import SinkStats, media_age_s


@dataclass(frozen=True)
class MseStats(SinkStats):
    clients: int = 0
    bytes_queued: int = 0
    fragments: int = 0
    queue_overflows: int = 0
    queue_drops: int = 0
    clients_dropped: int = 0


class MseSink:
    name = "mse"

    def __init__(
        self,
        gop_max_bytes: int,
        client_queue_bytes: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_queue_bytes = client_queue_bytes
        self._gop = GopCache(gop_max_bytes)
        self._init: InitSegment | None = None
        self._keyframe_seen = False  # since the current init segment
        self._clients: set[ClientQueue] = set()
        self._counters = QueueCounters()
        self._monotonic = monotonic
        self._closed = False
        self.fragments_total = 0
        self.last_fragment_monotonic: float | None = None

    # --- input (from the stream task) ---

    def set_init(self, init: InitSegment) -> None:
        """A new FFmpeg run: announce its init segment to everyone, who start over with it."""
        self._init = init
        self._keyframe_seen = False
        self._gop.clear()
        for client in self._clients:
            client.restart(self._init_messages())

    def add_fragment(self, fragment: Fragment) -> None:
        init = self._init
        if init is None:
            return
        # Audio-only: every fragment is a place to start decoding.
        start_point = fragment.keyframe or init.video_track_id is None
        self._keyframe_seen = self._keyframe_seen or start_point
        self.fragments_total += 1
        self.last_fragment_monotonic = self._monotonic()
        self._gop.add(fragment.data, start_point)
        ended = []
        for client in self._clients:
            client.offer(fragment.data, start_point)
            if client.end is not None:
                ended.append(client)
        self._clients.difference_update(ended)

    def discontinuity(self) -> None:
        """One FFmpeg run ended: nothing before the next init segment can follow on."""
        self._keyframe_seen = False
        self._gop.clear()
        for client in self._clients:
            client.restart([Message(discontinuity_message())])

    def close(self) -> None:
        self._closed = True
        self._gop.clear()
        for client in self._clients:
            client.finish(ClientEnd.STREAM_STOPPED)
        self._clients.clear()

    # --- viewers (from the WebSocket route) ---

    def subscribe(self) -> ClientQueue:
        """A new viewer's queue, holding what it needs to show a picture at once."""
        client = ClientQueue(self.client_queue_bytes, self._counters, monotonic=self._monotonic)
        if self._closed:
            client.finish(ClientEnd.STREAM_STOPPED)
            return client
        if self._init is not None:
            client.start(self._init_messages(), self._gop.fragments)
        self._clients.add(client)
        return client

    def unsubscribe(self, client: ClientQueue) -> None:
        self._clients.discard(client)

    def _init_messages(self) -> list[Message]:
        assert self._init is not None
        return [Message(init_message(self._init)), Message(self._init.data)]

    # --- state ---

    @property
    def ready(self) -> bool:
        """A viewer joining now gets an init segment and a keyframe to start from."""
        return self._init is not None and self._keyframe_seen

    @property
    def consumers(self) -> int:
        return len(self._clients)

    def stats(self) -> MseStats:
        counters = self._counters
        init_bytes = len(self._init.data) if self._init is not None else 0
        return MseStats(
            consumers=len(self._clients),
            bytes_held=self._gop.bytes_held + init_bytes,
            bytes_sent=counters.bytes_sent,
            last_media_age_s=media_age_s(self.last_fragment_monotonic, self._monotonic()),
            clients=len(self._clients),
            bytes_queued=sum(client.bytes_queued for client in self._clients),
            fragments=self.fragments_total,
            queue_overflows=counters.queue_overflows,
            queue_drops=counters.queue_drops,
            clients_dropped=counters.clients_dropped,
        )


class MseOutput:
    """Makes each starting stream's MSE sink."""

    name = "mse"

    def create(self, camera_id: str, settings: Settings) -> MseSink:
        return MseSink(settings.mse_gop_max_bytes, settings.mse_client_queue_bytes)
