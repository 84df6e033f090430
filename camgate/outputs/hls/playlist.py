"""Renders the media playlist (RFC 8216bis, draft-pantos-hls-rfc8216bis) of one live stream.

Pure functions from the segmenter's state to playlist text: no I/O, no clocks, no waiting
(blocking reload lives in ``camgate.outputs.hls.live``). URIs are relative and carry the stream
session: ``<session>/init-<id>.mp4``, ``<session>/seg-<msn>.m4s`` and
``<session>/part-<index>.m4s``, the last named by a counter that never restarts because the next
part may start a new segment (docs/llhls.md). A session never repeats, so a URI always names the
same bytes and caches may keep them for good.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from camgate.outputs.hls.segmenter import MIN_COMPLETE_SEGMENTS, Segment

LL_VERSION = 9  # RFC 8216bis 8: EXT-X-PART and friends are defined for version 9 playlists
PLAIN_VERSION = 6  # RFC 8216bis 8: EXT-X-MAP without EXT-X-I-FRAMES-ONLY needs version 6
# RFC 8216bis 4.4.3.8: at least two parts, three recommended. Generic players get three: with
# two, hls.js stalls once at start and then adds a second to its target for good; camgate's
# /watch page aims two parts behind itself (docs/llhls.md, latency).
PART_HOLD_BACK_PARTS = 3


class PlaylistSource(Protocol):
    """The state a playlist is rendered from (a ``Segmenter`` provides it)."""

    @property
    def segments(self) -> Sequence[Segment]: ...
    @property
    def open_segment(self) -> Segment | None: ...
    @property
    def target_duration(self) -> int: ...
    @property
    def part_target_s(self) -> float: ...
    @property
    def media_sequence(self) -> int: ...
    @property
    def discontinuity_sequence(self) -> int: ...
    @property
    def next_part_index(self) -> int: ...


def is_playable(source: PlaylistSource, *, low_latency: bool = True) -> bool:
    """Whether every client can start from the playlist: once MIN_COMPLETE_SEGMENTS segments
    are complete (GStreamer's hlsdemux2 needs them; a new stream's first segments are one part
    long, so that takes two parts) and, for LL-HLS, a listed part is INDEPENDENT, since hls.js
    starts only at such a part (docs/llhls.md).
    """
    if len(source.segments) < MIN_COMPLETE_SEGMENTS:
        return False
    if not low_latency:
        return True
    return any(part.independent for segment in listed(source, True) for part in segment.parts)


def listed(source: PlaylistSource, low_latency: bool) -> list[Segment]:
    """The segments a playlist shows: complete ones, plus the open one in LL-HLS."""
    segments = list(source.segments)
    if low_latency and source.open_segment is not None:
        segments.append(source.open_segment)
    return segments


SegmentLinesKey = tuple[int, int, int | None, bool, str, str]


def render_media_playlist(
    source: PlaylistSource,
    *,
    low_latency: bool = True,
    uri_query: str = "",
    session: str = "",
    memo: dict[SegmentLinesKey, list[str]] | None = None,
) -> str:
    """The media playlist text; ``low_latency=False`` gives plain HLS (no parts, no hints).

    ``uri_query`` (already URL-encoded, without ``?``) is appended to every media URI, so a
    signed viewer URL's signature reaches the init segment, segments and parts; ``session``
    (if any) is the directory every media URI is in. ``memo`` (kept by the caller across
    renderings of one stream session, whose segment numbers never repeat) keeps the lines of
    complete segments, which never change: each part then renders only the open segment.
    """
    suffix = f"?{uri_query}" if uri_query else ""
    prefix = f"{session}/" if session else ""
    segments = listed(source, low_latency)
    lines = header_lines(source, segments, low_latency)
    previous_init: int | None = None
    for segment in segments:
        # Parts leave older segments' listing (their count is in the key); nothing else changes.
        key = (segment.msn, len(segment.parts), previous_init, low_latency, suffix, prefix)
        kept = memo.get(key) if memo is not None and segment.complete else None
        if kept is None:
            kept = segment_lines(segment, previous_init, low_latency, suffix, prefix)
            if memo is not None and segment.complete:
                memo[key] = kept
        lines += kept
        previous_init = segment.init_id
    if memo is not None and segments and len(memo) > 4 * len(segments):
        first = segments[0].msn
        for stale in [key for key in memo if key[0] < first]:
            del memo[stale]
    if low_latency:
        # RFC 8216bis 4.4.5.3: hint the part being written so clients can request it early.
        hint = f"{prefix}part-{source.next_part_index}.m4s{suffix}"
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{hint}"')
    return "\n".join(lines) + "\n"


def header_lines(source: PlaylistSource, segments: list[Segment], low_latency: bool) -> list[str]:
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{LL_VERSION if low_latency else PLAIN_VERSION}",
        f"#EXT-X-TARGETDURATION:{source.target_duration}",
    ]
    if low_latency:
        hold_back = PART_HOLD_BACK_PARTS * source.part_target_s
        lines.append(
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={format_s(hold_back, 3)}"
        )
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={format_s(source.part_target_s, 3)}")
    first_msn = segments[0].msn if segments else source.media_sequence
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first_msn}")
    # RFC 8216bis 4.4.3.3: needed once a discontinuity was removed or one is listed.
    if source.discontinuity_sequence or any(segment.discontinuity for segment in segments):
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{source.discontinuity_sequence}")
    return lines


def segment_lines(
    segment: Segment,
    previous_init: int | None,
    low_latency: bool,
    suffix: str = "",
    prefix: str = "",
) -> list[str]:
    lines: list[str] = []
    if segment.discontinuity:
        lines.append("#EXT-X-DISCONTINUITY")
    if segment.init_id != previous_init:
        # RFC 8216bis 4.4.4.5: a new EXT-X-MAP follows a discontinuity with a new init segment.
        lines.append(f'#EXT-X-MAP:URI="{prefix}init-{segment.init_id}.mp4{suffix}"')
    lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(segment.program_date_time)}")
    if low_latency:
        lines += [
            part_line(part.duration_s, part.index, part.independent, suffix, prefix)
            for part in segment.parts
        ]
    if segment.complete:
        lines.append(f"#EXTINF:{format_s(segment.duration_s, 5)},")
        lines.append(f"{prefix}seg-{segment.msn}.m4s{suffix}")
    return lines


def part_line(
    duration_s: float, index: int, independent: bool, suffix: str = "", prefix: str = ""
) -> str:
    # RFC 8216bis 4.4.4.9: INDEPENDENT=YES only where the part starts with a keyframe; hls.js
    # treats every part as independent when none is marked (docs/llhls.md).
    flag = ",INDEPENDENT=YES" if independent else ""
    uri = f"{prefix}part-{index}.m4s{suffix}"
    return f'#EXT-X-PART:DURATION={format_s(duration_s, 5)},URI="{uri}"{flag}'


def format_s(seconds: float, decimals: int) -> str:
    return f"{seconds:.{decimals}f}"


def format_date_time(moment: datetime) -> str:
    """ISO 8601 with milliseconds, in UTC (RFC 8216bis 4.4.4.6)."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
