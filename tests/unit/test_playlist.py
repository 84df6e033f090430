"""Media playlist rendering: parsed back with the m3u8 package and checked line by line."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import m3u8
import pytest

from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from camgate.outputs.hls.playlist import (
    SegmentLinesKey,
    format_date_time,
    is_playable,
    render_media_playlist,
)
from camgate.outputs.hls.segmenter import Segmenter

DATA = Path(__file__).parent / "data"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LL_HEADER = ["#EXTM3U", "#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-SERVER-CONTROL"]
LL_HEADER += ["#EXT-X-PART-INF", "#EXT-X-MEDIA-SEQUENCE"]
PLAIN_HEADER = ["#EXTM3U", "#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE"]


def fixture_stream() -> tuple[InitSegment, list[Fragment]]:
    init, *fragments = Fmp4Reader().feed((DATA / "av_every_frame_ff5.mp4").read_bytes())
    assert isinstance(init, InitSegment)
    return init, [f for f in fragments if isinstance(f, Fragment)]


def synthetic(seconds: float, gop_frames: int, start_s: float = 0.0) -> list[Fragment]:
    return [
        Fragment(b"v" * 500, start_s + n * 0.04, 0.04, 1, n % gop_frames == 0)
        for n in range(round(seconds / 0.04))
    ]


def fed(segmenter: Segmenter, fragments: list[Fragment]) -> Segmenter:
    for fragment in fragments:
        segmenter.add_fragment(fragment, T0 + timedelta(seconds=fragment.start_s))
    return segmenter


def live_segmenter() -> Segmenter:
    init, fragments = fixture_stream()
    segmenter = Segmenter(1.0, 0.2, 5, max_segment_s=2.0)
    segmenter.set_init(init)
    return fed(segmenter, fragments[:-20])  # stop mid-segment: an open segment with parts


@dataclass
class Checked:
    """What the strict line-by-line walk found."""

    header: list[str] = field(default_factory=list)
    extinfs: list[float] = field(default_factory=list)
    segment_uris: list[str] = field(default_factory=list)
    parts: list[tuple[float, str, bool]] = field(default_factory=list)
    maps: list[str] = field(default_factory=list)
    discontinuities: int = 0


def check_playlist(text: str, *, low_latency: bool, session: str = "") -> Checked:
    """Walk the playlist and assert the RFC 8216bis rules camgate relies on, plus what the
    strictest client checked (GStreamer's hlsdemux2) needs: two complete segments."""
    prefix = f"{session}/" if session else ""
    assert text.startswith("#EXTM3U\n") and text.endswith("\n")
    lines = text.rstrip("\n").split("\n")
    assert all(line == line.strip() and line for line in lines), "no blank or padded lines"
    values = {line.split(":", 1)[0]: line.partition(":")[2] for line in lines}
    checked = Checked(header=[line.split(":")[0] for line in lines[: len(LL_HEADER)]])
    target = int(values["#EXT-X-TARGETDURATION"])
    pending_pdt = False
    for line in lines:
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.split(":", 1)[1])
            pending_pdt = True
        elif line.startswith("#EXT-X-MAP:"):
            checked.maps.append(line)
        elif line == "#EXT-X-DISCONTINUITY":
            checked.discontinuities += 1
        elif line.startswith("#EXT-X-PART:"):
            found = re.fullmatch(
                r'#EXT-X-PART:DURATION=([\d.]+),URI="([^"]+)"(,INDEPENDENT=YES)?', line
            )
            assert found, line
            checked.parts.append((float(found[1]), found[2], found[3] is not None))
        elif line.startswith("#EXTINF:"):
            assert pending_pdt, "every segment carries EXT-X-PROGRAM-DATE-TIME"
            checked.extinfs.append(float(line[len("#EXTINF:") :].rstrip(",")))
        elif not line.startswith("#"):
            checked.segment_uris.append(line)
            pending_pdt = False
    # RFC 8216bis 4.4.3.1: each EXTINF rounded to the nearest integer is <= TARGETDURATION.
    assert all(math.floor(duration + 0.5) <= target for duration in checked.extinfs)
    first_msn = int(values["#EXT-X-MEDIA-SEQUENCE"])
    expected_uris = [f"{prefix}seg-{first_msn + n}.m4s" for n in range(len(checked.segment_uris))]
    assert checked.segment_uris == expected_uris
    assert len(checked.segment_uris) >= 2, "hlsdemux2 refuses fewer than two complete segments"
    assert checked.maps and all(f'URI="{prefix}init-' in line for line in checked.maps)
    first_pdt = next(n for n, line in enumerate(lines) if line.startswith("#EXT-X-PROGRAM-DATE"))
    assert lines.index(checked.maps[0]) < first_pdt
    if low_latency:
        check_ll_rules(values, checked, prefix)
    else:
        assert not checked.parts and "#EXT-X-PRELOAD-HINT" not in values
    return checked


def check_ll_rules(values: dict[str, str], checked: Checked, prefix: str = "") -> None:
    part_target = float(values["#EXT-X-PART-INF"].removeprefix("PART-TARGET="))
    control = values["#EXT-X-SERVER-CONTROL"]
    hold_back = float(control.removeprefix("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK="))
    # RFC 8216bis 4.4.3.8: PART-HOLD-BACK at least twice PART-TARGET (rounded to ms).
    assert hold_back >= round(2 * part_target, 3) and hold_back <= 3 * part_target
    assert all(duration <= part_target for duration, _, _ in checked.parts)
    # hls.js starts only at an INDEPENDENT part (docs/llhls.md).
    assert any(independent for _, _, independent in checked.parts)
    assert all(uri.startswith(f"{prefix}part-") for _, uri, _ in checked.parts)
    indexes = [int(uri.removeprefix(f"{prefix}part-").removesuffix(".m4s")) for _, uri, _ in checked.parts]
    assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    assert values["#EXT-X-PRELOAD-HINT"] == f'TYPE=PART,URI="{prefix}part-{indexes[-1] + 1}.m4s"'
    assert list(values)[-1] == "#EXT-X-PRELOAD-HINT", "the hint comes last"


def test_ll_playlist_parses_and_follows_the_rules() -> None:
    segmenter = live_segmenter()
    text = render_media_playlist(segmenter)
    checked = check_playlist(text, low_latency=True)
    playlist = m3u8.loads(text)

    assert checked.header == LL_HEADER
    assert playlist.version == 9
    assert playlist.target_duration == segmenter.target_duration == 2
    assert playlist.part_inf.part_target == segmenter.part_target_s == 0.204
    assert playlist.server_control.can_block_reload == "YES"
    assert playlist.media_sequence == 0
    assert playlist.preload_hint.uri == f"part-{segmenter.next_part_index}.m4s"
    # Two one-part lead-in segments, the rest of the first GOP, the second GOP, the open third.
    assert [s.uri for s in playlist.segments] == [f"seg-{n}.m4s" for n in range(4)] + [None]
    assert checked.maps == ['#EXT-X-MAP:URI="init-1.mp4"']


def test_independent_only_on_keyframe_parts() -> None:
    segmenter = live_segmenter()
    checked = check_playlist(render_media_playlist(segmenter), low_latency=True)

    held = [*segmenter.segments, segmenter.open_segment]
    keyframe_parts = {f"part-{p.index}.m4s" for s in held if s for p in s.parts if p.independent}
    assert {uri for _, uri, independent in checked.parts if independent} == keyframe_parts
    # One per GOP whose parts are still listed (the first lead-in segment's part is not).
    assert len(keyframe_parts) == 2


def test_plain_playlist_lists_only_complete_segments() -> None:
    segmenter = live_segmenter()
    text = render_media_playlist(segmenter, low_latency=False)
    checked = check_playlist(text, low_latency=False)

    assert checked.header[:4] == PLAIN_HEADER
    assert "#EXT-X-VERSION:6" in text
    assert "SERVER-CONTROL" not in text and "PART-INF" not in text
    assert [s.uri for s in m3u8.loads(text).segments] == [f"seg-{n}.m4s" for n in range(4)]


def test_old_segments_lose_their_parts_and_media_sequence_advances() -> None:
    segmenter = Segmenter(1.0, 0.2, 4)
    segmenter.set_init(fixture_stream()[0])
    fed(segmenter, synthetic(12.0, 25))
    checked = check_playlist(render_media_playlist(segmenter), low_latency=True)

    assert m3u8.loads(render_media_playlist(segmenter)).media_sequence == 9  # 2 lead-in + 11
    assert len(checked.segment_uris) == 4
    assert len(checked.parts) == 3 * 5 + len(segmenter.open_segment.parts)  # type: ignore[union-attr]


def test_discontinuity_repeats_the_map_and_counts_when_removed() -> None:
    init, _ = fixture_stream()
    segmenter = Segmenter(1.0, 0.2, 3)
    segmenter.set_init(init)
    fed(segmenter, synthetic(3.0, 25))
    segmenter.set_init(init)
    fed(segmenter, synthetic(2.0, 25))
    text = render_media_playlist(segmenter)
    checked = check_playlist(text, low_latency=True)

    assert checked.discontinuities == 1
    assert checked.maps == ['#EXT-X-MAP:URI="init-1.mp4"', '#EXT-X-MAP:URI="init-2.mp4"']
    assert text.index("#EXT-X-DISCONTINUITY\n") < text.index("init-2.mp4")
    assert m3u8.loads(text).discontinuity_sequence == 0
    fed(segmenter, synthetic(4.0, 25, start_s=2.0))
    later = render_media_playlist(segmenter)
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in later
    assert "#EXT-X-DISCONTINUITY\n" not in later
    assert check_playlist(later, low_latency=True).maps == ['#EXT-X-MAP:URI="init-2.mp4"']


def test_long_gop_playlist_keeps_target_duration() -> None:
    segmenter = Segmenter(1.0, 0.2, 6, max_segment_s=2.0)
    segmenter.set_init(fixture_stream()[0])
    fed(segmenter, synthetic(12.0, 100))  # 4 s GOP, target duration 2
    checked = check_playlist(render_media_playlist(segmenter), low_latency=True)

    assert max(checked.extinfs) < 2.5  # cut so that every EXTINF rounds to <= 2
    starts, at = [], 0.0
    for duration, _, independent in checked.parts:
        starts.append((round(at, 3), independent))
        at += duration
    first = next(start for start, independent in starts if independent)
    # Keyframes come every 4 s: exactly the parts starting on one are INDEPENDENT.
    for start, independent in starts:
        on_keyframe = start >= first and abs(((start - first) + 0.01) % 4.0) < 0.02
        assert independent == on_keyframe, (start, independent)


# Both once the two one-part lead-in segments are complete: 6 frames measured, then 2 parts.
@pytest.mark.parametrize(("low_latency", "playable_after_s"), [(True, 0.40), (False, 0.40)])
def test_playable_rules(low_latency: bool, playable_after_s: float) -> None:
    segmenter = Segmenter(1.0, 0.2, 5)
    segmenter.set_init(fixture_stream()[0])
    playable_at = None
    for fragment in synthetic(4.0, 25):
        fed(segmenter, [fragment])
        if playable_at is None and is_playable(segmenter, low_latency=low_latency):
            playable_at = fragment.start_s + fragment.duration_s
    assert playable_at == pytest.approx(playable_after_s)


def test_program_date_time_is_utc_with_milliseconds() -> None:
    moment = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=UTC).astimezone()
    assert format_date_time(moment) == "2024-05-01T14:00:00.123Z"


@pytest.mark.parametrize("gop_frames", [50, 25, 100])  # 2 s, 1 s and (cut) 4 s GOPs
@pytest.mark.parametrize("low_latency", [True, False])
def test_every_playlist_served_from_the_first_is_valid(gop_frames: int, low_latency: bool) -> None:
    """Frame by frame from a new stream: whenever a playlist is served it passes the strict
    walk, so hls.js, hlsdemux2 and FFmpeg can all start from the very first one."""
    segmenter = Segmenter(2.0, 0.2, 6)
    segmenter.set_init(fixture_stream()[0])
    served = 0
    for fragment in synthetic(6.0, gop_frames):
        fed(segmenter, [fragment])
        if is_playable(segmenter, low_latency=low_latency):
            text = render_media_playlist(segmenter, low_latency=low_latency, session="s1")
            check_playlist(text, low_latency=low_latency, session="s1")
            served += 1
    assert served > 100


def test_media_uris_carry_the_session_then_the_query() -> None:
    segmenter = live_segmenter()
    text = render_media_playlist(segmenter, uri_query="exp=1&sig=abc", session="0a1b2c")
    uris = re.findall(r'URI="([^"]+)"', text) + [
        line for line in text.splitlines() if not line.startswith("#")
    ]

    assert len(uris) > 10
    assert all(re.fullmatch(r"0a1b2c/(init|seg|part)-\d+\.(mp4|m4s)\?exp=1&sig=abc", u) for u in uris)


@pytest.mark.parametrize("max_segments", [2, 4])  # 2: segments leave; 4: old ones lose parts
def test_kept_lines_of_complete_segments_render_the_same_playlist(max_segments: int) -> None:
    """Rendering with the memo LiveHls keeps gives, part after part, the text rendered afresh:
    also when older segments lose their parts and the oldest leave the playlist."""
    init, *fragments = Fmp4Reader().feed((DATA / "av_every_frame_ff5.mp4").read_bytes())
    assert isinstance(init, InitSegment)
    segmenter = Segmenter(1.0, 0.2, max_segments)
    segmenter.set_init(init)
    memo: dict[SegmentLinesKey, list[str]] = {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    compared = 0
    for n, fragment in enumerate(f for f in fragments if isinstance(f, Fragment)):
        segmenter.add_fragment(fragment, start + timedelta(seconds=n * 0.04))
        for low_latency in (True, False):
            fresh = render_media_playlist(segmenter, low_latency=low_latency, session="s")
            kept = render_media_playlist(
                segmenter, low_latency=low_latency, session="s", memo=memo
            )
            assert kept == fresh
            compared += 1
    assert compared > 100
    if max_segments == 2:
        assert segmenter.media_sequence > 0
    else:
        assert any(not segment.parts for segment in segmenter.segments)
    assert 0 < len(memo) <= 40
