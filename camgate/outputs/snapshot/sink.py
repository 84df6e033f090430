"""The JPEG snapshot output of one camera: the latest keyframe, decoded on request.

The stream task hands `SnapshotSink` every item; it keeps only the current init segment and the
fragment of the latest video keyframe (so what it holds is bounded by one keyframe). A request
for a JPEG decodes that keyframe once per (keyframe, width): later and concurrent requests get
the same bytes (`SingleFlightCache`). Decodes of all cameras share a few slots, so snapshots
cannot take the machine from the streams. It knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from camgate.config import Settings
from camgate.errors import CamgateError
from camgate.fmp4 import Fragment, InitSegment
from camgate.outputs.sink import SinkStats, media_age_s, request_viewers
from camgate.outputs.snapshot.decoder import DecodeFailed, FfmpegJpegDecoder
from camgate.outputs.snapshot.flight import Outcome, SingleFlightCache

log = logging.getLogger("camgate.snapshot")

# Dashboards and Home Assistant poll every few seconds; one that has not asked for this long
# is gone (the consumer count on-demand cameras and metrics read).
VIEWER_SEEN_S = 10.0
CACHE_ENTRIES = 4  # a few widths of the current keyframe (thumbnail, tile, full size)
MAX_PARALLEL_DECODES = 2  # for all cameras together
SLOT_WAIT_S = 10.0

# Decodes MP4 bytes (init + keyframe fragment) to a JPEG `width` pixels wide (None: as is).
JpegDecoder = Callable[[bytes, int | None], Awaitable[bytes]]


class SnapshotUnavailable(CamgateError):
    """No JPEG can be served now; a retry in a moment may succeed (HTTP 503)."""


class UndecodableKeyframe(SnapshotUnavailable):
    """FFmpeg made no JPEG of the latest keyframe; the next keyframe gets a new try."""


@dataclass(frozen=True)
class Keyframe:
    """The latest video keyframe with the init segment it belongs to."""

    seq: int
    init: InitSegment
    fragment: Fragment
    received_monotonic: float

    @property
    def mp4(self) -> bytes:
        return self.init.data + self.fragment.data

    @property
    def bytes_held(self) -> int:
        return len(self.init.data) + len(self.fragment.data)


def output_width(requested: int | None, source_width: int | None) -> int | None:
    """The width to scale to; None (the picture as it is) when none is asked or it would not
    shrink the picture: snapshots are never scaled up."""
    if requested is None or (source_width is not None and requested >= source_width):
        return None
    return requested


@dataclass(frozen=True)
class SnapshotStats(SinkStats):
    keyframes: int = 0
    decodes: int = 0
    decode_failures: int = 0
    cache_hits: int = 0
    shared_decodes: int = 0  # requests that waited for another request's decode
    last_decode_ms: float | None = None


class SnapshotSink:
    name = "snapshot"

    def __init__(
        self,
        camera_id: str,
        decode: JpegDecoder,
        *,
        slots: asyncio.Semaphore | None = None,
        cache_entries: int = CACHE_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera_id = camera_id
        self._decode_jpeg = decode
        self._slots = slots or asyncio.Semaphore(MAX_PARALLEL_DECODES)
        self._monotonic = monotonic
        self._cache: SingleFlightCache[tuple[int, int | None], bytes] = SingleFlightCache(
            cache_entries, size_of=len, remembered=(UndecodableKeyframe,)
        )
        self._init: InitSegment | None = None
        self._keyframe: Keyframe | None = None
        self._closed = False
        self._serving = 0
        self._last_request_monotonic: float | None = None
        self.keyframes_total = 0
        self.decodes_total = 0
        self.decode_failures = 0
        self.cache_hits = 0
        self.shared_decodes = 0
        self.bytes_sent = 0
        self.last_decode_ms: float | None = None

    # --- input (from the stream task) ---

    def set_init(self, init: InitSegment) -> None:
        # A keyframe only decodes with its own init segment: drop one from an older init.
        if self._init is not None and init.data != self._init.data:
            self._keyframe = None
        self._init = init

    def add_fragment(self, fragment: Fragment) -> None:
        if not (fragment.keyframe and fragment.video_samples) or self._init is None:
            return
        self.keyframes_total += 1
        self._keyframe = Keyframe(self.keyframes_total, self._init, fragment, self._monotonic())

    def discontinuity(self) -> None:
        """The FFmpeg run ended: its last picture is not the camera's now."""
        self._init = None
        self._keyframe = None
        self._cache.clear()

    def close(self) -> None:
        self._closed = True
        self.discontinuity()
        self._cache.cancel()

    # --- requests (from the HTTP handlers) ---

    async def jpeg(self, width: int | None = None) -> bytes:
        """The latest keyframe as a JPEG, `width` pixels wide if narrower than the picture.
        Raises `SnapshotUnavailable` when there is no keyframe yet or it cannot be decoded."""
        self._last_request_monotonic = self._monotonic()
        keyframe = self._keyframe
        if keyframe is None:
            state = "has stopped" if self._closed else "has no keyframe yet"
            raise SnapshotUnavailable(f"camera {self.camera_id} {state}")
        scaled = output_width(width, keyframe.init.width)
        self._serving += 1
        try:
            jpeg, outcome = await self._cache.get(
                (keyframe.seq, scaled), lambda: self._decode(keyframe, scaled)
            )
        finally:
            self._serving -= 1
        if outcome is Outcome.HIT:
            self.cache_hits += 1
        elif outcome is Outcome.JOINED:
            self.shared_decodes += 1
        self.bytes_sent += len(jpeg)
        return jpeg

    async def _decode(self, keyframe: Keyframe, width: int | None) -> bytes:
        try:
            async with asyncio.timeout(SLOT_WAIT_S):
                await self._slots.acquire()
        except TimeoutError:
            raise SnapshotUnavailable("too many snapshots are being decoded; retry") from None
        try:
            started = time.monotonic()
            self.decodes_total += 1
            jpeg = await self._decode_jpeg(keyframe.mp4, width)
            self.last_decode_ms = round((time.monotonic() - started) * 1000, 1)
            return jpeg
        except DecodeFailed as error:
            self.decode_failures += 1
            log.warning("camera %s: snapshot decode failed: %s", self.camera_id, error)
            raise UndecodableKeyframe(
                f"camera {self.camera_id}: the latest keyframe could not be decoded ({error})"
            ) from None
        finally:
            self._slots.release()

    # --- state ---

    @property
    def ready(self) -> bool:
        return self._keyframe is not None

    @property
    def consumers(self) -> int:
        """Requests being served, else 1 while one was served within VIEWER_SEEN_S."""
        return request_viewers(
            self._serving, self._last_request_monotonic, self._monotonic(), VIEWER_SEEN_S
        )

    @property
    def keyframe_seq(self) -> int | None:
        """Which keyframe a JPEG would show now (counts up from 1), None without one."""
        return self._keyframe.seq if self._keyframe is not None else None

    def stats(self) -> SnapshotStats:
        keyframe = self._keyframe
        return SnapshotStats(
            consumers=self.consumers,
            bytes_held=(keyframe.bytes_held if keyframe else 0) + self._cache.bytes_held,
            bytes_sent=self.bytes_sent,
            last_media_age_s=media_age_s(
                keyframe.received_monotonic if keyframe else None, self._monotonic()
            ),
            keyframes=self.keyframes_total,
            decodes=self.decodes_total,
            decode_failures=self.decode_failures,
            cache_hits=self.cache_hits,
            shared_decodes=self.shared_decodes,
            last_decode_ms=self.last_decode_ms,
        )


class SnapshotOutput:
    """Makes each starting stream's snapshot sink; its decodes share MAX_PARALLEL_DECODES."""

    name = "snapshot"

    def __init__(self, ffmpeg: str, max_parallel_decodes: int = MAX_PARALLEL_DECODES) -> None:
        self.decoder = FfmpegJpegDecoder(ffmpeg)
        self.slots = asyncio.Semaphore(max_parallel_decodes)

    def create(self, camera_id: str, settings: Settings) -> SnapshotSink:
        return SnapshotSink(camera_id, self.decoder, slots=self.slots)
