"""One WebRTC viewer's bounded frame queue and the RTP clock it is sent on.

The sink offers every access unit to every viewer's `ViewerQueue`; the viewer's track takes them
out as aiortc's sender asks. A queue is made when the offer is answered but stays `PENDING`
(nothing is queued) until the connection is up and the track first asks for a picture: only then
does it join, at the latest keyframe, so nothing piles up during ICE and DTLS. The pictures since
that keyframe are queued at once but stamped a tick apart (`Retimer`), so the browser decodes them
straight away and shows the newest instead of playing the group of pictures a second behind live;
`CatchUpPacer` spreads that burst at a bounded bit rate. A viewer that falls more than
``max_frames`` behind skips to the next keyframe. Pure apart from one `asyncio.Event`; nothing
here does I/O.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum

RTP_CLOCK_HZ = 90_000  # RFC 6184 5.1: H.264 RTP timestamps run at 90 kHz
CATCH_UP_TICKS = 1  # between the queued pictures a joining viewer is sent at once
GAP_TICKS = RTP_CLOCK_HZ // 25  # after a camera restart: one frame at 25 fps
# The catch-up burst (up to a GOP, ~250 kB for a 1 Mbit/s camera with a 2 s GOP) goes out at
# this rate: fast enough to reach live within a tenth of a second or two, slow enough not to
# overflow a receiver's socket buffer or a home uplink's queue in one go.
CATCH_UP_BITS_PER_S = 20_000_000
CATCH_UP_BURST_BYTES = 64_000  # sent without pacing: the keyframe and a few pictures after it


@dataclass(frozen=True)
class EncodedFrame:
    """One Annex-B access unit, shared by every viewer; its presentation time at 90 kHz."""

    data: bytes
    pts: int
    keyframe: bool


@dataclass(frozen=True)
class TimedFrame:
    data: bytes
    timestamp: int  # RTP timestamp offset (aiortc adds its random origin)
    keyframe: bool
    catch_up: bool = False  # one of the pictures queued at joining, before the live ones


class Retimer:
    """Maps camera presentation times to one rising RTP clock per viewer.

    Pictures marked ``catch_up`` follow a tick apart; the next live picture continues from the
    last catch-up picture at the camera's own pace, so no delay builds up. After a
    `restart` (a new FFmpeg run, whose clock starts anew) the clock goes on one frame later."""

    def __init__(self) -> None:
        self._offset: int | None = None
        self._last: int | None = None

    def restart(self) -> None:
        self._offset = None

    def timestamp(self, pts: int, catch_up: bool = False) -> int:
        if self._last is None:
            stamp = 0
        elif catch_up:
            stamp = self._last + CATCH_UP_TICKS
        elif self._offset is None:
            stamp = self._last + GAP_TICKS
        else:
            stamp = pts + self._offset
            if stamp <= self._last:  # the camera's clock went back: keep ours rising
                stamp = self._last + GAP_TICKS
        self._offset = stamp - pts
        self._last = stamp
        return stamp


class ViewerEnd(StrEnum):
    STREAM_STOPPED = "the camera's stream stopped"
    CLOSED = "the session was closed"


class Delivery(Enum):
    PENDING = "pending"  # answered, not connected yet: nothing is queued until `start`
    WAITING = "waiting"  # for a keyframe: after joining without one, a restart or an overflow
    LIVE = "live"
    ENDED = "ended"


class ViewerQueue:
    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self.state = Delivery.PENDING
        self.end: ViewerEnd | None = None
        self.frames_dropped = 0
        self._frames: deque[TimedFrame] = deque()
        self._retimer = Retimer()
        self._queued = asyncio.Event()

    # --- from the sink (the stream's task) ---

    def start(self, group: Sequence[EncodedFrame]) -> None:
        """Joining: the pictures since the latest keyframe (the first one is it), sent at once;
        without any, the next keyframe."""
        if self.state is not Delivery.PENDING:
            return
        self.state = Delivery.WAITING
        for index, frame in enumerate(group):
            self._push(frame, catch_up=index > 0)
            self.state = Delivery.LIVE

    def restart(self) -> None:
        """A new FFmpeg run or a discontinuity: wait for its first keyframe."""
        if self.state not in (Delivery.ENDED, Delivery.PENDING):
            self.state = Delivery.WAITING
            self._retimer.restart()

    def offer(self, frame: EncodedFrame) -> None:
        if self.state in (Delivery.ENDED, Delivery.PENDING):
            return
        if len(self._frames) >= self.max_frames:
            self.frames_dropped += len(self._frames)
            self._frames.clear()
            self.state = Delivery.WAITING
        if self.state is Delivery.WAITING and not frame.keyframe:
            self.frames_dropped += 1
            return
        self.state = Delivery.LIVE
        self._push(frame)

    def finish(self, end: ViewerEnd) -> None:
        if self.state is Delivery.ENDED:
            return
        self.state = Delivery.ENDED
        self.end = end
        self._frames.clear()
        self._queued.set()

    # --- from the viewer's track ---

    @property
    def frames_queued(self) -> int:
        return len(self._frames)

    def take(self) -> TimedFrame | None:
        if not self._frames:
            return None
        return self._frames.popleft()

    async def next(self) -> TimedFrame | None:
        """The next picture, waiting for one; None once the viewer is ended."""
        while (frame := self.take()) is None and self.state is not Delivery.ENDED:
            self._queued.clear()
            await self._queued.wait()
        return frame

    def _push(self, frame: EncodedFrame, catch_up: bool = False) -> None:
        stamp = self._retimer.timestamp(frame.pts, catch_up)
        self._frames.append(TimedFrame(frame.data, stamp, frame.keyframe, catch_up))
        self._queued.set()


class CatchUpPacer:
    """How long to wait before sending a catch-up picture: a token bucket of
    ``burst_bytes`` refilled at ``bits_per_s``. Live pictures are never delayed."""

    def __init__(
        self, bits_per_s: int = CATCH_UP_BITS_PER_S, burst_bytes: int = CATCH_UP_BURST_BYTES
    ) -> None:
        self._bytes_per_s = bits_per_s / 8
        self._burst = float(burst_bytes)
        self._tokens = float(burst_bytes)
        self._at: float | None = None

    def delay_s(self, now_s: float, size: int) -> float:
        if self._at is not None:
            self._tokens = min(self._burst, self._tokens + (now_s - self._at) * self._bytes_per_s)
        self._at = now_s
        self._tokens -= size
        return max(0.0, -self._tokens / self._bytes_per_s)
