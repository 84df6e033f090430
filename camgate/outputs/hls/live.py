"""The live LL-HLS state of one camera: a Segmenter plus the waits blocking reload needs.

The stream task feeds it init segments and fragments; HTTP handlers read playlists, segments and
parts from it and await new parts. Waiters sleep on one asyncio.Event that is set and replaced
whenever a part or segment completes: no polling. It never does I/O and knows nothing of HTTP.
It is the HLS output's `MediaSink` (see ``camgate.outputs.sink``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from camgate.config import Settings
from camgate.fmp4 import Fragment, InitSegment
from camgate.outputs.hls.playlist import SegmentLinesKey, is_playable, render_media_playlist
from camgate.outputs.hls.segmenter import Part, Segment, Segmenter
from camgate.outputs.sink import SinkStats, media_age_s, request_viewers

# RFC 8216bis 6.3.4: a player reloads a live playlist at least once per target duration; one
# that has not asked for this many target durations is gone.
VIEWER_SEEN_TARGET_DURATIONS = 3
SESSION_BYTES = 6  # 48 random bits name a stream session in its media URIs
# Stands in for a request's query in a cached playlist; no playlist text contains it.
QUERY_MARK = "\x00"
QUERY_VARIANTS_KEPT = 32  # signed-query renderings kept per playlist version


def new_session() -> str:
    """A name for one stream session's media URIs, never the same twice (random, not counted,
    so a restarted server or another node of the fleet never repeats one)."""
    return secrets.token_hex(SESSION_BYTES)


@dataclass(frozen=True)
class HlsStats(SinkStats):
    segments: int = 0
    parts: int = 0
    fragments: int = 0
    fragments_dropped: int = 0


def utc_now() -> datetime:
    return datetime.now(UTC)


class LiveHls:
    name = "hls"

    def __init__(
        self,
        segmenter: Segmenter,
        *,
        wall_clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        session: str | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.session = session if session is not None else new_session()
        self._rendered_version = -1
        self._templates: dict[bool, str] = {}  # per low_latency, with QUERY_MARK for the query
        self._rendered: dict[tuple[bool, str], bytes] = {}
        self._segment_lines: dict[SegmentLinesKey, list[str]] = {}  # complete segments' lines
        self.renders = 0  # playlist renderings (one per version and variant, not per request)
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._changed = asyncio.Event()
        self._closed = False
        self.fragments_total = 0
        self.bytes_total = 0
        self.bytes_sent = 0
        self.last_fragment_monotonic: float | None = None
        self._waiting = 0
        self._last_request_monotonic: float | None = None

    # --- input (from the stream task) ---

    def set_init(self, init: InitSegment) -> None:
        self._notify_after(lambda: self.segmenter.set_init(init))

    def add_fragment(self, fragment: Fragment) -> list[Part]:
        self.fragments_total += 1
        self.bytes_total += len(fragment.data)
        self.last_fragment_monotonic = self._monotonic()
        parts: list[Part] = []
        self._notify_after(
            lambda: parts.extend(self.segmenter.add_fragment(fragment, self._wall_clock()))
        )
        return parts

    def flush(self) -> list[Part]:
        parts: list[Part] = []
        self._notify_after(lambda: parts.extend(self.segmenter.flush()))
        return parts

    def discontinuity(self) -> None:
        """One FFmpeg run ended: close the open segment (the next run is marked discontinuous)."""
        self.flush()

    def mark_discontinuity(self) -> None:
        self._notify_after(self.segmenter.mark_discontinuity)

    def close(self) -> None:
        """Wake every waiter; waits return False from now on unless already satisfied."""
        self._closed = True
        self._wake()

    def _notify_after(self, change: Callable[[], object]) -> None:
        version = self.segmenter.version
        change()
        if self.segmenter.version != version:
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- blocking reload (RFC 8216bis 6.2.5.2) ---

    def has_part(self, msn: int, part: int | None) -> bool:
        """Whether the LL playlist holds (msn, part); part None asks for the complete segment.

        (msn, part) pairs compare in order, so a request for (msn, last part + 1) is answered by
        the next segment's part 0, as clients ask at a segment boundary (docs/llhls.md).
        """
        if part is None:
            last_msn = self.segmenter.last_complete_msn
            return last_msn is not None and last_msn >= msn
        last = self.segmenter.last_part
        return last is not None and (last.msn, last.part_no) >= (msn, part)

    async def wait_for_part(self, msn: int, part: int | None, timeout_s: float) -> bool:
        return await self._wait(lambda: self.has_part(msn, part), timeout_s)

    async def wait_for_part_index(self, index: int, timeout_s: float) -> bool:
        """Wait until the part with this global index (a preload hint) is complete."""
        return await self._wait(lambda: self.segmenter.next_part_index > index, timeout_s)

    async def wait_until_playable(self, timeout_s: float) -> bool:
        return await self._wait(self.playable, timeout_s)

    async def _wait(self, ready: Callable[[], bool], timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._waiting += 1
        try:
            while not ready():
                remaining = deadline - loop.time()
                if self._closed or remaining <= 0:
                    return False
                try:
                    # asyncio.timeout, not wait_for: no task per waiter (hundreds per part).
                    async with asyncio.timeout(remaining):
                        await self._changed.wait()
                except TimeoutError:
                    return ready()
            return True
        finally:
            self._waiting -= 1

    # --- viewers (for on-demand pulling and metrics) ---

    def note_request(self, bytes_sent: int) -> None:
        """An HTTP handler served something of this output."""
        self._last_request_monotonic = self._monotonic()
        self.bytes_sent += bytes_sent

    @property
    def consumers(self) -> int:
        """Players following the stream: each LL-HLS player keeps one blocking request open;
        a plain-HLS player counts while it asked within three target durations."""
        seen_s = VIEWER_SEEN_TARGET_DURATIONS * self.segmenter.target_duration
        return request_viewers(
            self._waiting, self._last_request_monotonic, self._monotonic(), seen_s
        )

    @property
    def ready(self) -> bool:
        return self.playable(True)

    # --- lookups (for the HTTP handlers) ---

    @property
    def live_edge_msn(self) -> int | None:
        """MSN of the last segment the LL playlist lists (the open one, if any)."""
        if self.segmenter.open_segment is not None:
            return self.segmenter.open_segment.msn
        return self.segmenter.last_complete_msn

    @property
    def next_part_index(self) -> int:
        return self.segmenter.next_part_index

    @property
    def target_duration(self) -> int:
        return self.segmenter.target_duration

    def init(self, init_id: int) -> bytes | None:
        init = self.segmenter.inits.get(init_id)
        return init.data if init is not None else None

    def segment(self, msn: int) -> Segment | None:
        return self.segmenter.segment(msn)

    def part(self, index: int) -> Part | None:
        return self.segmenter.part(index)

    def playable(self, low_latency: bool = True) -> bool:
        return is_playable(self.segmenter, low_latency=low_latency)

    def playlist(self, low_latency: bool = True, uri_query: str = "") -> str | None:
        """The playlist text, or None while a player could not start from it yet."""
        data = self.playlist_bytes(low_latency, uri_query)
        return data.decode() if data is not None else None

    def playlist_bytes(self, low_latency: bool = True, uri_query: str = "") -> bytes | None:
        """The playlist as served, rendered once per segmenter version: every viewer woken by
        the same part gets the same bytes; a signed query is put into a cached template."""
        if self._rendered_version != self.segmenter.version:
            self._rendered_version = self.segmenter.version
            self._templates.clear()
            self._rendered.clear()
        key = (low_latency, uri_query)
        data = self._rendered.get(key)
        if data is None:
            if not self.playable(low_latency):
                return None
            template = self._templates.get(low_latency)
            if template is None:
                template = render_media_playlist(
                    self.segmenter, low_latency=low_latency, uri_query=QUERY_MARK,
                    session=self.session, memo=self._segment_lines,
                )  # fmt: skip
                self._templates[low_latency] = template
                self.renders += 1
            query = f"?{uri_query}" if uri_query else ""
            data = template.replace(f"?{QUERY_MARK}", query).encode()
            if len(self._rendered) >= QUERY_VARIANTS_KEPT:
                self._rendered.clear()
            self._rendered[key] = data
        return data

    def stats(self) -> HlsStats:
        segmenter = self.segmenter
        held = [*segmenter.segments, *([segmenter.open_segment] if segmenter.open_segment else [])]
        return HlsStats(
            consumers=self.consumers,
            bytes_held=segmenter.bytes_held,
            bytes_sent=self.bytes_sent,
            last_media_age_s=media_age_s(self.last_fragment_monotonic, self._monotonic()),
            segments=len(segmenter.segments),
            parts=sum(len(segment.parts) for segment in held),
            fragments=self.fragments_total,
            fragments_dropped=segmenter.fragments_dropped,
        )


class HlsOutput:
    """Makes each starting stream's LL-HLS sink."""

    name = "hls"

    def create(self, camera_id: str, settings: Settings) -> LiveHls:
        s = settings
        return LiveHls(Segmenter(s.hls_segment_time_s, s.hls_part_time_s, s.hls_max_segments))
