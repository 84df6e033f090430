"""Groups fMP4 fragments into LL-HLS parts and segments, and keeps a bounded ring of them.

Parts are closed by video frame count (docs/llhls.md: summed, jittery durations broke
PART-TARGET), a keyframe always starts a part, and a segment closes at the first keyframe at or
after the segment target, so with stream copy segments follow the camera's GOP. This module is
pure: no I/O, no clock reads (the caller passes the wall clock), no asyncio.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from camgate.fmp4 import Fragment, InitSegment

MEASURE_FRAMES = 6  # video frames looked at before the frame duration (and PART-TARGET) is fixed
PARTS_KEPT_SEGMENTS = 3  # complete segments whose parts stay listed and served
PART_JITTER_MARGIN = 0.1  # of a frame: PART-TARGET headroom for timestamp jitter
PDT_MAX_DRIFT_S = 2.0  # re-anchor PROGRAM-DATE-TIME when media time and wall clock drift apart
EPSILON_S = 1e-6
# GStreamer's hlsdemux2 refuses a live playlist without a complete segment and aborts on one
# with a single segment (docs/llhls.md), so playlists are served once this many are complete. To
# get there within two parts instead of two GOPs, each part closes its segment until then (the
# "lead-in": one-part segments; the second starts without a keyframe, as a cut segment does).
MIN_COMPLETE_SEGMENTS = 2


@dataclass(frozen=True)
class Part:
    index: int  # global counter that never restarts: the URI is part-<index>.m4s
    msn: int
    part_no: int
    duration_s: float
    independent: bool
    # Its own bytes while its segment is open; a view into the segment's bytes once that closed,
    # so a part and its segment share one copy and neither is joined per request.
    data: bytes | memoryview


@dataclass
class Segment:
    msn: int
    start_s: float
    program_date_time: datetime
    discontinuity: bool
    init_id: int
    parts: list[Part] = field(default_factory=list)  # emptied once the parts are too old to list
    duration_s: float = 0.0
    complete: bool = False
    # The parts' bytes while open; one joined chunk, made once when the segment closes.
    chunks: list[bytes | memoryview] = field(default_factory=list, repr=False)

    @property
    def data(self) -> bytes | memoryview:
        if len(self.chunks) == 1:
            return self.chunks[0]
        return b"".join(self.chunks)

    @property
    def size_bytes(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


@dataclass
class OpenPart:
    """Fragments collected for the next part; it has no msn until it closes."""

    fragments: list[Fragment] = field(default_factory=list)
    frames: int = 0
    duration_s: float = 0.0
    independent: bool = False
    first_video: tuple[float, datetime] | None = None  # (media start, wall clock at arrival)


def ceil_ms(seconds: float) -> float:
    return math.ceil(round(seconds * 1000, 6)) / 1000


class Segmenter:
    """One camera's parts and segments; the playlist renderer and HTTP layer read its state."""

    def __init__(
        self,
        segment_target_s: float,
        part_target_s: float,
        max_segments: int,
        *,
        max_segment_s: float | None = None,
        lead_in_segments: int = MIN_COMPLETE_SEGMENTS,
    ) -> None:
        if not 0 < part_target_s <= segment_target_s or max_segments < 1:
            raise ValueError("need 0 < part_target_s <= segment_target_s and max_segments >= 1")
        self.segment_target_s = segment_target_s
        # The setting until the first frames are measured; then fixed for the stream's life.
        self.part_target_s = part_target_s
        self.max_segments = max_segments
        # RFC 8216bis 4.4.3.1: every EXTINF, rounded to the nearest integer, must be <=
        # TARGETDURATION, which never changes. The GOP is unknown when the first playlist goes
        # out, so segments may run to just under TARGETDURATION + 0.5 s; a longer GOP is cut at a
        # frame boundary (see _segment_would_overflow). A tight TARGETDURATION matters: plain-HLS
        # players stay about three target durations behind live.
        if max_segment_s is not None and max_segment_s < segment_target_s:
            raise ValueError("max_segment_s must not be below segment_target_s")
        self.target_duration = max(1, round(max_segment_s or segment_target_s))
        self.lead_in_segments = lead_in_segments  # 0: segments follow keyframes from the start
        self.frames_per_part: int | None = None
        self.frame_s: float | None = None
        self.segments: list[Segment] = []  # complete segments, oldest first
        self.open_segment: Segment | None = None
        self.inits: dict[int, InitSegment] = {}
        self.init_id = 0
        self.media_sequence = 0
        self.discontinuity_sequence = 0
        self.next_part_index = 0
        self.version = 0  # bumped whenever a part or segment completes
        self.fragments_dropped = 0
        self._next_msn = 0
        self._parts: dict[int, Part] = {}
        self._open = OpenPart()
        self._pending: list[tuple[Fragment, datetime]] = []  # held until frames are measured
        self._measured: list[float] = []
        self._fragment_frames: list[int] = []
        self._need_keyframe = True
        self._discontinuity = False
        self._pdt_anchor: tuple[float, datetime] | None = None

    @property
    def last_part(self) -> Part | None:
        return self._parts.get(self.next_part_index - 1)

    @property
    def last_complete_msn(self) -> int | None:
        return self.segments[-1].msn if self.segments else None

    @property
    def next_position(self) -> tuple[int, int]:
        """(msn, part_no) the next part gets unless a keyframe or cut starts a new segment."""
        if self.open_segment is not None:
            return self.open_segment.msn, len(self.open_segment.parts)
        return self._next_msn, 0

    @property
    def bytes_held(self) -> int:
        held = sum(segment.size_bytes for segment in self.segments)
        held += self.open_segment.size_bytes if self.open_segment else 0
        held += sum(len(f.data) for f in self._open.fragments)
        held += sum(len(f.data) for f, _ in self._pending)
        return held + sum(len(init.data) for init in self.inits.values())

    def part(self, index: int) -> Part | None:
        return self._parts.get(index)

    def segment(self, msn: int) -> Segment | None:
        first = self.segments[0].msn if self.segments else 0
        if 0 <= msn - first < len(self.segments):
            return self.segments[msn - first]
        return None

    def set_init(self, init: InitSegment) -> None:
        """A new init segment (FFmpeg restarted): what follows is a discontinuity."""
        had_media = self.next_part_index > 0
        self.flush()
        self.init_id += 1
        self.inits[self.init_id] = init
        self.version += 1
        self._discontinuity = had_media
        self._pdt_anchor = None
        self._drop_unused_inits()

    def mark_discontinuity(self) -> None:
        """Timestamps will jump (same init): close what is open; the next segment is flagged."""
        self.flush()
        self._discontinuity = self.next_part_index > 0
        self._pdt_anchor = None

    def flush(self) -> list[Part]:
        """Close the open part and segment, e.g. when FFmpeg exited; wait for a keyframe again."""
        done = self._replay_pending() if self._pending else []
        done += self._close_part()
        self._open = OpenPart()  # audio with no video after it has no duration to list
        self._close_segment()
        self._need_keyframe = True
        self._pending, self._measured, self._fragment_frames = [], [], []
        return done

    def add_fragment(self, fragment: Fragment, now: datetime) -> list[Part]:
        """Returns the parts this fragment completed."""
        if self.init_id == 0:
            raise ValueError("add_fragment before set_init")
        if self._need_keyframe:
            if not (fragment.video_samples and fragment.keyframe):
                self.fragments_dropped += 1  # a player cannot start decoding from it
                return []
            self._need_keyframe = False
        if self.frames_per_part is not None:
            return self._place(fragment, now)
        self._pending.append((fragment, now))
        frames = fragment.video_samples
        if frames:
            self._fragment_frames.append(frames)
        if frames and fragment.duration_s > 0:
            self._measured += [fragment.duration_s / frames] * frames
        # Counting frames, not durations, bounds the wait even if every duration is 0.
        return self._replay_pending() if sum(self._fragment_frames) >= MEASURE_FRAMES else []

    def _replay_pending(self) -> list[Part]:
        self._decide_part_target()
        pending, self._pending = self._pending, []
        return [part for fragment, now in pending for part in self._place(fragment, now)]

    def _decide_part_target(self) -> None:
        """Fix frames per part and PART-TARGET once, from the median measured frame duration."""
        if self.frames_per_part is not None:
            return
        frame_s = statistics.median(self._measured) if self._measured else self.part_target_s
        frames = max(1, math.floor(self.part_target_s / frame_s + 0.01))
        # A multi-frame fragment cannot be split: a part holds at least one typical fragment.
        if self._fragment_frames:
            frames = max(frames, int(statistics.median(self._fragment_frames)))
        self.frame_s, self.frames_per_part = frame_s, frames
        # RFC 8216bis 4.4.3.7: no part may be longer than PART-TARGET.
        self.part_target_s = ceil_ms(frames * frame_s + PART_JITTER_MARGIN * frame_s)

    def _place(self, fragment: Fragment, now: datetime) -> list[Part]:
        if not fragment.video_samples:
            self._open.fragments.append(fragment)  # audio joins the current part
            return []
        done: list[Part] = []
        if fragment.keyframe or (
            self._open.frames
            and self._open.duration_s + fragment.duration_s > self.part_target_s + EPSILON_S
        ):
            done += self._close_part()
        if (fragment.keyframe and self._segment_due()) or self._segment_would_overflow(fragment):
            done += self._close_part()  # a cut may end the segment's last part early
            self._close_segment()
        self._add_video(fragment, now)
        if self._open.frames >= (self.frames_per_part or 1):
            done += self._close_part()
        return done

    def _add_video(self, fragment: Fragment, now: datetime) -> None:
        part = self._open
        if part.first_video is None:
            part.first_video = (fragment.start_s, now)
            part.independent = fragment.keyframe
        part.fragments.append(fragment)
        part.frames += fragment.video_samples
        part.duration_s += fragment.duration_s

    def _segment_due(self) -> bool:
        """A keyframe closes the segment once it reached its target (within half a frame), and
        always closes one that was cut without a keyframe, so keyframes start segments again."""
        segment = self.open_segment
        if segment is None:
            return False
        half_frame = (self.frame_s or 0.0) / 2
        cut = not segment.parts[0].independent
        return cut or segment.duration_s + half_frame >= self.segment_target_s

    def _segment_would_overflow(self, fragment: Fragment) -> bool:
        """Long-GOP strategy: when this frame would make the segment longer than TARGETDURATION,
        the segment ends before it (its last part may be short, which RFC 8216bis 4.4.4.9 allows
        for the final part of a segment). The next segment then starts without a keyframe; its
        parts are not INDEPENDENT, so hls.js still starts only at a keyframe part, and the next
        keyframe starts a new segment again (see _segment_due)."""
        held = self._open.duration_s + (self.open_segment.duration_s if self.open_segment else 0)
        return held > 0 and held + fragment.duration_s >= self.target_duration + 0.5 - EPSILON_S

    def _close_part(self) -> list[Part]:
        part = self._open
        if not part.frames or part.first_video is None:
            return []
        segment = self.open_segment or self._open_segment(*part.first_video)
        closed = Part(
            index=self.next_part_index,
            msn=segment.msn,
            part_no=len(segment.parts),
            duration_s=part.duration_s,
            independent=part.independent,
            data=b"".join(fragment.data for fragment in part.fragments),
        )
        self.next_part_index += 1
        segment.parts.append(closed)
        segment.chunks.append(closed.data)
        segment.duration_s += closed.duration_s
        self._parts[closed.index] = closed
        self._open = OpenPart()
        self.version += 1
        if segment.msn < self.lead_in_segments:
            self._close_segment()  # a lead-in segment: one part long
        return [closed]

    def _open_segment(self, start_s: float, now: datetime) -> Segment:
        anchor = self._pdt_anchor
        if anchor is not None:
            pdt = anchor[1] + timedelta(seconds=start_s - anchor[0])
            if abs((pdt - now).total_seconds()) > PDT_MAX_DRIFT_S:
                anchor = None
        if anchor is None:
            self._pdt_anchor = anchor = (start_s, now)
        segment = Segment(
            msn=self._next_msn,
            start_s=start_s,
            program_date_time=anchor[1] + timedelta(seconds=start_s - anchor[0]),
            discontinuity=self._discontinuity,
            init_id=self.init_id,
        )
        self._discontinuity = False
        self._next_msn += 1
        self.open_segment = segment
        return segment

    def _close_segment(self) -> None:
        segment, self.open_segment = self.open_segment, None
        if segment is None:
            return
        segment.complete = True
        self._share_bytes(segment)
        self.segments.append(segment)
        self.version += 1
        while len(self.segments) > self.max_segments:
            evicted = self.segments.pop(0)
            # RFC 8216bis 6.2.2: removing an EXT-X-DISCONTINUITY tag increments the sequence.
            self.discontinuity_sequence += int(evicted.discontinuity)
            self._drop_parts(evicted)
        self.media_sequence = self.segments[0].msn
        for old in self.segments[:-PARTS_KEPT_SEGMENTS]:
            self._drop_parts(old)
        self._drop_unused_inits()

    def _share_bytes(self, segment: Segment) -> None:
        """Join the segment's bytes once and point its parts into them (no second copy)."""
        joined = b"".join(segment.chunks)
        view, offset, shared = memoryview(joined), 0, []
        for part in segment.parts:
            size = len(part.data)
            shared.append(replace(part, data=view[offset : offset + size]))
            offset += size
        segment.parts, segment.chunks = shared, [joined]
        self._parts.update((part.index, part) for part in shared)

    def _drop_parts(self, segment: Segment) -> None:
        for part in segment.parts:
            self._parts.pop(part.index, None)
        segment.parts = []

    def _drop_unused_inits(self) -> None:
        used = {segment.init_id for segment in self.segments} | {self.init_id}
        for init_id in [i for i in self.inits if i not in used]:
            del self.inits[init_id]
