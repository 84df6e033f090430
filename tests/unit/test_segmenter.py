"""The segmenter: parts by frame count, segments at keyframes, long GOPs, ring and memory bounds."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment, TrackInfo
from camgate.outputs.hls.segmenter import Part, Segmenter

DATA = Path(__file__).parent / "data"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
INIT = InitSegment(b"init", (TrackInfo(1, "video", 90000, "avc1.64001f"),), 1)


def video(start_s: float, *, key: bool = False, frames: int = 1, frame_s: float = 0.04) -> Fragment:
    size = 1000 * frames
    return Fragment(b"v" * size, start_s, frames * frame_s, frames, key)


def audio(start_s: float) -> Fragment:
    return Fragment(b"a" * 100, start_s, 0.0, 0, False)


def stream(
    seconds: float, *, gop_frames: int, frame_s: float = 0.04, start_s: float = 0.0
) -> Iterator[tuple[Fragment, datetime]]:
    """(fragment, wall clock) for a video-only stream, one fragment per frame."""
    for n in range(round(seconds / frame_s)):
        at = start_s + n * frame_s
        yield video(at, key=n % gop_frames == 0, frame_s=frame_s), T0 + timedelta(seconds=at)


def feed(segmenter: Segmenter, fragments: Iterable[tuple[Fragment, datetime]]) -> list[Part]:
    return [part for fragment, now in fragments for part in segmenter.add_fragment(fragment, now)]


def new_segmenter(
    segment_s: float = 1.0, part_s: float = 0.2, ring: int = 5, *, lead_in: int = 0
) -> Segmenter:
    """A segmenter whose segments follow keyframes from the start (no lead-in) unless asked."""
    segmenter = Segmenter(
        segment_s, part_s, ring, max_segment_s=max(2.0, segment_s), lead_in_segments=lead_in
    )
    segmenter.set_init(INIT)
    return segmenter


def test_parts_hold_a_fixed_number_of_frames_within_part_target() -> None:
    segmenter = new_segmenter()
    parts = feed(segmenter, stream(3.0, gop_frames=25))

    assert segmenter.frames_per_part == 5
    assert segmenter.part_target_s == 0.204  # 5 frames + 10% of a frame of jitter headroom
    assert [round(p.duration_s, 3) for p in parts[:6]] == [0.2] * 5 + [0.2]
    assert len(parts[0].data) == 5000
    assert [p.index for p in parts] == list(range(len(parts)))


def test_jittery_frames_never_make_a_part_longer_than_part_target() -> None:
    segmenter = new_segmenter()
    fragments, at = [], 0.0
    for n in range(200):
        frame_s = (0.039, 0.041, 0.0405, 0.0395)[n % 4]
        fragments.append((video(at, key=n % 50 == 0, frame_s=frame_s), T0))
        at += frame_s
    parts = feed(segmenter, fragments)

    assert max(p.duration_s for p in parts) <= segmenter.part_target_s
    assert [p.duration_s for p in parts].count(0.0) == 0
    assert sum(1 for p in parts if round(p.duration_s / 0.04) == 5) >= len(parts) - 4


def test_keyframe_starts_a_new_independent_part() -> None:
    segmenter = new_segmenter(segment_s=0.4)
    parts = feed(segmenter, stream(2.4, gop_frames=12))  # 12 frames: parts of 5, 5, 2

    frames = [round(p.duration_s / 0.04) for p in parts[:6]]
    assert frames == [5, 5, 2, 5, 5, 2]
    assert [p.independent for p in parts[:6]] == [True, False, False, True, False, False]


def test_segment_closes_at_first_keyframe_after_target() -> None:
    segmenter = new_segmenter(segment_s=1.0)
    feed(segmenter, stream(4.0, gop_frames=15))  # 0.6 s GOP: segments of two GOPs

    durations = [round(s.duration_s, 3) for s in segmenter.segments]
    assert durations == [1.2, 1.2, 1.2]
    assert all(s.parts[0].independent for s in segmenter.segments)
    assert [s.msn for s in segmenter.segments] == [0, 1, 2]


def test_slightly_short_gop_still_closes_the_segment_on_target() -> None:
    segmenter = new_segmenter(segment_s=2.0)
    feed(segmenter, stream(6.0, gop_frames=50, frame_s=0.03996))  # a GOP of 1.998 s

    assert [round(s.duration_s, 2) for s in segmenter.segments] == [2.0, 2.0]


def test_long_gop_is_cut_at_a_part_boundary_within_target_duration() -> None:
    segmenter = new_segmenter(segment_s=1.0)  # TARGETDURATION 2
    feed(segmenter, stream(10.0, gop_frames=125))  # 5 s GOP

    assert segmenter.target_duration == 2
    # cut just before rounding up past 2; the keyframe at 5 s starts a segment again
    assert [round(s.duration_s, 3) for s in segmenter.segments] == [2.48, 2.48, 0.04, 2.48, 2.48]
    cut = [s for s in segmenter.segments if not s.parts or not s.parts[0].independent]
    assert cut, "a 5 s GOP must be cut below a 2 s target duration"
    all_parts = [p for s in segmenter.segments for p in s.parts]
    independent = [p for p in all_parts if p.independent]
    assert len(independent) == 1  # the keyframe at 5 s (frame 125); frame 0 left the ring
    assert segmenter.segments[3].parts[0] is independent[0]  # the segment starting at 5.0 s
    # After a cut, the next keyframe starts a segment again, even a short one.
    assert independent[0].part_no == 0


def test_fragments_before_the_first_keyframe_are_dropped() -> None:
    segmenter = new_segmenter()
    lead_in = [(video(n * 0.04), T0) for n in range(3)] + [(audio(0.1), T0)]
    parts = feed(segmenter, [*lead_in, *stream(1.0, gop_frames=25, start_s=0.12)])

    assert segmenter.fragments_dropped == 4
    assert parts[0].independent
    assert b"a" not in parts[0].data


def test_audio_fragments_join_the_current_part() -> None:
    segmenter = new_segmenter()
    fragments = []
    for fragment, now in stream(1.0, gop_frames=25):
        fragments += [(fragment, now), (audio(fragment.start_s), now)]
    parts = feed(segmenter, fragments)

    assert all(p.data.count(b"a" * 100) >= 4 for p in parts)
    assert sum(p.data.count(b"a" * 100) for p in parts) + 1 == 25  # the last waits for video


def test_multi_frame_fragments_are_never_split() -> None:
    segmenter = new_segmenter(part_s=0.1)
    fragments = [(video(n * 0.2, key=n % 5 == 0, frames=5), T0) for n in range(20)]
    parts = feed(segmenter, fragments)

    assert segmenter.frames_per_part == 5
    assert segmenter.part_target_s == 0.204
    assert all(p.duration_s <= segmenter.part_target_s for p in parts)


def test_ring_keeps_max_segments_and_parts_only_for_the_last_three() -> None:
    segmenter = new_segmenter(segment_s=1.0, ring=5)
    feed(segmenter, stream(20.0, gop_frames=25))

    assert len(segmenter.segments) == 5
    assert segmenter.media_sequence == segmenter.segments[0].msn == 14
    assert [bool(s.parts) for s in segmenter.segments] == [False, False, True, True, True]
    assert segmenter.part(0) is None
    assert segmenter.segment(13) is None
    assert segmenter.segment(14) is segmenter.segments[0]
    assert len(segmenter.segments[0].data) == 25000  # bytes outlive the part list


def test_bytes_held_stay_bounded_over_a_long_feed() -> None:
    segmenter = new_segmenter(segment_s=1.0, ring=4)
    feed(segmenter, stream(10.0, gop_frames=25))
    early = segmenter.bytes_held
    feed(segmenter, stream(600.0, gop_frames=25, start_s=10.0))

    assert segmenter.bytes_held == early
    assert segmenter.bytes_held <= (4 + 1) * 25 * 1000 + len(INIT.data)


def test_new_init_starts_a_discontinuity_and_msn_keeps_counting() -> None:
    segmenter = new_segmenter(ring=3)
    feed(segmenter, stream(3.0, gop_frames=25))
    segmenter.flush()
    last_msn, last_index = segmenter.segments[-1].msn, segmenter.next_part_index
    segmenter.set_init(InitSegment(b"init2", INIT.tracks, 1))
    feed(segmenter, stream(2.0, gop_frames=25))  # timestamps restart at 0

    first_new = segmenter.segment(last_msn + 1)
    assert first_new is not None and first_new.discontinuity and first_new.init_id == 2
    assert segmenter.part(last_index) is not None
    assert segmenter.part(last_index).msn == last_msn + 1  # type: ignore[union-attr]
    assert sorted(segmenter.inits) == [1, 2]
    feed(segmenter, stream(4.0, gop_frames=25, start_s=2.0))
    assert segmenter.discontinuity_sequence == 1
    assert sorted(segmenter.inits) == [2]


def test_flush_closes_the_open_part_and_segment() -> None:
    segmenter = new_segmenter()
    feed(segmenter, stream(0.52, gop_frames=25))  # 13 frames: 2 parts and 3 frames open
    parts = segmenter.flush()

    assert [round(p.duration_s, 2) for p in parts] == [0.12]
    assert segmenter.open_segment is None
    assert segmenter.segments[0].complete and len(segmenter.segments[0].parts) == 3


def test_program_date_time_follows_media_time() -> None:
    segmenter = new_segmenter()
    feed(segmenter, stream(4.0, gop_frames=25))

    pdts = [s.program_date_time for s in segmenter.segments]
    assert pdts[0] == T0
    assert [(b - a).total_seconds() for a, b in zip(pdts, pdts[1:], strict=False)] == [
        pytest.approx(1.0)
    ] * 2


def test_real_ffmpeg_output_gives_valid_parts() -> None:
    items = Fmp4Reader().feed((DATA / "av_every_frame_ff5.mp4").read_bytes())
    segmenter = Segmenter(1.0, 0.2, 5)  # with the default lead-in
    segmenter.set_init(items[0])  # type: ignore[arg-type]
    for fragment in items[1:]:
        segmenter.add_fragment(fragment, T0)  # type: ignore[arg-type]
    segmenter.flush()

    parts = [p for s in segmenter.segments for p in s.parts]
    assert segmenter.part_target_s == 0.204
    assert all(p.duration_s <= segmenter.part_target_s for p in parts)
    # Two one-part lead-in segments, the rest of the first GOP, then one segment per GOP.
    assert [round(s.duration_s, 1) for s in segmenter.segments][:2] == [0.2, 0.2]
    assert segmenter.segments[3].parts[0].independent
    assert sum(p.independent for p in parts) == 2  # parts of the first GOP left the ring


def test_lead_in_gives_two_complete_segments_within_two_parts() -> None:
    segmenter = new_segmenter(segment_s=2.0, lead_in=2)
    parts = feed(segmenter, stream(6.0, gop_frames=50))  # 2 s GOP

    assert [(p.msn, p.part_no) for p in parts[:4]] == [(0, 0), (1, 0), (2, 0), (2, 1)]
    assert [p.independent for p in parts[:3]] == [True, False, False]
    # The third runs to the next keyframe; from there on segments follow the GOP.
    assert [round(s.duration_s, 2) for s in segmenter.segments] == [0.2, 0.2, 1.6, 2.0]
    assert segmenter.segments[3].parts[0].independent


def test_complete_segments_share_their_bytes_with_their_parts() -> None:
    segmenter = new_segmenter(segment_s=1.0)
    feed(segmenter, stream(3.0, gop_frames=25))
    segment = segmenter.segments[-1]

    assert isinstance(segment.data, bytes) and segment.data is segment.data  # joined once
    assert b"".join(bytes(part.data) for part in segment.parts) == segment.data
    assert all(isinstance(part.data, memoryview) for part in segment.parts)
    assert all(segmenter.part(part.index) is part for part in segment.parts)
    assert segmenter.bytes_held <= 4 * 25 * 1000 + len(INIT.data)  # no second copy


def test_a_gop_that_rounds_to_target_duration_is_not_cut() -> None:
    segmenter = new_segmenter(segment_s=2.0)  # TARGETDURATION 2: segments up to 2.49 s
    feed(segmenter, stream(12.0, gop_frames=60))  # a 2.4 s GOP

    assert segmenter.target_duration == 2
    assert [round(s.duration_s, 3) for s in segmenter.segments] == [2.4, 2.4, 2.4, 2.4]


def test_zero_durations_do_not_stall_the_frame_measurement() -> None:
    segmenter = new_segmenter()
    fragments = [(video(0.0, key=n == 0, frame_s=0.0), T0) for n in range(8)]
    parts = feed(segmenter, fragments)

    assert segmenter.frames_per_part == 1
    assert len(parts) == 8


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        Segmenter(2.0, 0.2, 5, max_segment_s=1.0)
    with pytest.raises(ValueError):
        Segmenter(1.0, 2.0, 5)
    with pytest.raises(ValueError):
        Segmenter(1.0, 0.2, 5).add_fragment(video(0.0, key=True), T0)
