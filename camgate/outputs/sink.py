"""The output seam: what a stream hands its media to, and how it builds those receivers.

A stream knows its outputs only through `MediaSink`: it fans every item FFmpeg produces (the
init segment, then fragments) out to each sink, tells them when one FFmpeg run ended
(`discontinuity`) and when the stream is over (`close`). Each output (HLS, MSE, snapshots, ...)
is one folder under `camgate.outputs` with its sink and pure logic, plus one route module under
`camgate.api.outputs`; adding one touches no other output.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from camgate.config import Settings
from camgate.flv import FlvItem
from camgate.fmp4 import Fragment, InitSegment


@dataclass(frozen=True)
class SinkStats:
    """What an output holds and serves now; outputs extend it with their own figures."""

    consumers: int = 0
    bytes_held: int = 0
    bytes_sent: int = 0
    last_media_age_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """camelCase keys for the API."""
        return {_camel(key): value for key, value in asdict(self).items()}


def _camel(name: str) -> str:
    head, *rest = name.removesuffix("_s").split("_")
    suffix = "Seconds" if name.endswith("_s") else ""
    return head + "".join(word.title() for word in rest) + suffix


def media_age_s(last_monotonic: float | None, now: float | None = None) -> float | None:
    """Seconds since the last media item (monotonic clock), None before the first."""
    if last_monotonic is None:
        return None
    return round((time.monotonic() if now is None else now) - last_monotonic, 2)


def request_viewers(
    in_flight: int, last_request_monotonic: float | None, now: float, window_s: float
) -> int:
    """Viewers of a request-based output: the requests being served, else one while the last
    request is less than `window_s` old (a player between two requests)."""
    recent = last_request_monotonic is not None and now - last_request_monotonic < window_s
    return max(in_flight, 1 if recent else 0)


class MediaSink(Protocol):
    """One output of one camera's stream. Called from the stream's task only; never blocks."""

    name: str

    def set_init(self, init: InitSegment) -> None: ...
    def add_fragment(self, fragment: Fragment) -> object: ...
    def discontinuity(self) -> None: ...
    def close(self) -> None: ...
    def stats(self) -> SinkStats: ...

    @property
    def ready(self) -> bool:
        """The output can serve a viewer now."""
        ...

    @property
    def consumers(self) -> int:
        """Viewers being served (connections, or recent requests for request-based outputs)."""
        ...


@runtime_checkable
class PacketSink(Protocol):
    """An output that also takes the video packet by packet, as FFmpeg has it (``camgate.flv``):
    a frame sooner than the fragments, for outputs where a frame of delay counts (WebRTC)."""

    def add_packet(self, item: FlvItem) -> None: ...


class OutputFactory(Protocol):
    """Makes one output's sink for a stream that starts."""

    name: str

    def create(self, camera_id: str, settings: Settings) -> MediaSink: ...


class Outputs:
    """A stream's sinks, each fed every item in turn."""

    def __init__(self, sinks: Sequence[MediaSink]) -> None:
        self._sinks = {sink.name: sink for sink in sinks}
        self._packet_sinks = [sink for sink in sinks if isinstance(sink, PacketSink)]

    @classmethod
    def build(
        cls, factories: Sequence[OutputFactory], camera_id: str, settings: Settings
    ) -> Outputs:
        return cls([factory.create(camera_id, settings) for factory in factories])

    def get(self, name: str) -> MediaSink | None:
        return self._sinks.get(name)

    def set_init(self, init: InitSegment) -> None:
        for sink in self._sinks.values():
            sink.set_init(init)

    def add_fragment(self, fragment: Fragment) -> None:
        for sink in self._sinks.values():
            sink.add_fragment(fragment)

    @property
    def takes_packets(self) -> bool:
        """Some output wants the video packet by packet too (FFmpeg then writes it twice)."""
        return bool(self._packet_sinks)

    def add_packet(self, item: FlvItem) -> None:
        for sink in self._packet_sinks:
            sink.add_packet(item)

    def discontinuity(self) -> None:
        for sink in self._sinks.values():
            sink.discontinuity()

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()

    @property
    def ready(self) -> bool:
        """Every output can serve a viewer (the stream counts as running from then on)."""
        return all(sink.ready for sink in self._sinks.values())

    @property
    def consumers(self) -> int:
        return sum(sink.consumers for sink in self._sinks.values())

    def stats(self) -> dict[str, SinkStats]:
        return {name: sink.stats() for name, sink in self._sinks.items()}
