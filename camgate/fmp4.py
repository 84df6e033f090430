"""Incremental reader for the fragmented MP4 (ISO/IEC 14496-12) FFmpeg writes to its stdout pipe.

It cuts the byte stream into the init segment (ftyp+moov) and fragments (moof+mdat) and reads the
few facts the HLS segmenter needs from each: decode time, duration, video sample count and whether
it starts with a keyframe. It never does I/O, never looks at sample payloads and never buffers more
than one box of at most ``max_box_bytes``: malformed input raises ``Fmp4Error`` instead.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

# Boxes that belong to the next fragment when they come before its moof (ISO 14496-12 8.16, 8.17).
FRAGMENT_PREFIX_BOXES = frozenset({b"styp", b"sidx", b"ssix", b"prft", b"emsg"})
SAMPLE_IS_NON_SYNC = 0x00010000  # sample_flags bit (ISO 14496-12 8.8.3.1)
HANDLER_KINDS = {b"vide": "video", b"soun": "audio"}


class Fmp4Error(ValueError):
    """The byte stream is not fragmented MP4 as expected; the message says what was wrong."""


@dataclass(frozen=True)
class TrackInfo:
    track_id: int
    kind: str  # "video", "audio" or the raw handler type
    timescale: int
    codec: str  # RFC 6381 codecs string, best effort ("" when unknown)
    default_sample_duration: int = 0  # from trex (ISO 14496-12 8.8.3)
    default_sample_flags: int = 0


@dataclass(frozen=True)
class InitSegment:
    data: bytes
    tracks: tuple[TrackInfo, ...]
    video_track_id: int | None
    width: int | None = None
    height: int | None = None

    @property
    def codecs(self) -> str:
        return ",".join(track.codec for track in self.tracks if track.codec)


@dataclass(frozen=True)
class Fragment:
    data: bytes
    start_s: float
    duration_s: float
    video_samples: int
    keyframe: bool


@dataclass(frozen=True)
class TrafFacts:
    """What one traf says about its track: decode time, sample count, duration, first flags."""

    track_id: int
    base_decode_time: int | None
    sample_count: int
    duration: int
    first_sample_flags: int


def box_header(
    buf: bytes | bytearray, offset: int = 0, end: int | None = None
) -> tuple[int, bytes, int] | None:
    """(size, type, header length) of the box at ``offset``; None until the header is complete."""
    available = (len(buf) if end is None else end) - offset
    if available < 8:
        return None
    size, box_type = struct.unpack_from(">I4s", buf, offset)
    header = 8
    if size == 1:  # 64-bit largesize follows the type
        if available < 16:
            return None
        (size,) = struct.unpack_from(">Q", buf, offset + 8)
        header = 16
    if size < header:
        raise Fmp4Error(f"box {box_type!r} has size {size}, smaller than its header")
    return size, box_type, header


def iter_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each child box in ``data[start:end]``."""
    offset = start
    while offset + 8 <= end:
        size, box_type, header = box_header(data, offset, end) or (0, b"?", 0)
        if header == 0 or offset + size > end:
            raise Fmp4Error(f"box {box_type!r} at {offset} overruns its parent")
        yield box_type, offset + header, offset + size
        offset += size


def find_box(data: bytes, start: int, end: int, path: tuple[bytes, ...]) -> tuple[int, int] | None:
    """(payload start, end) of the first box reached through ``path`` of box types."""
    for box_type, payload, box_end in iter_boxes(data, start, end):
        if box_type == path[0]:
            return (
                (payload, box_end) if len(path) == 1 else find_box(data, payload, box_end, path[1:])
            )
    return None


def is_fourcc(box_type: bytes) -> bool:
    """Top-level box types are four printable ASCII characters."""
    return all(0x20 <= byte <= 0x7E for byte in box_type)


def avc_codec(name: str, data: bytes, config: int) -> str:
    """RFC 6381 3.3: avc1.PPCCLL from the avcC profile, compatibility and level bytes."""
    return f"{name}.{data[config + 1]:02x}{data[config + 2]:02x}{data[config + 3]:02x}"


def hevc_codec(name: str, data: bytes, config: int) -> str:
    """ISO 14496-15 Annex E: hvc1.<space><profile>.<compat>.<tier><level>.<constraints>."""
    space_tier_profile = data[config + 1]
    space = ("", "A", "B", "C")[space_tier_profile >> 6]
    tier = "H" if space_tier_profile & 0x20 else "L"
    (compat,) = struct.unpack_from(">I", data, config + 2)
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    constraints = bytearray(data[config + 6 : config + 12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [name, f"{space}{space_tier_profile & 0x1F}", f"{reversed_compat:x}"]
    parts.append(f"{tier}{data[config + 12]}")
    parts.extend(f"{byte:02X}" for byte in constraints)
    return ".".join(parts)


def read_descriptor(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, payload start, payload end) of an MPEG-4 descriptor (ISO 14496-1 8.3.3)."""
    tag, offset, size = data[offset], offset + 1, 0
    for _ in range(4):
        if offset >= end:
            break
        byte = data[offset]
        offset += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return tag, offset, min(offset + size, end)


def mp4a_codec(data: bytes, esds: int, end: int) -> str:
    """RFC 6381 3.3: mp4a.<objectTypeIndication hex>.<audio object type> from esds."""
    tag, offset, es_end = read_descriptor(data, esds + 4, end)  # esds is a full box
    if tag != 0x03:
        return "mp4a"
    es_flags = data[offset + 2]
    offset += 3 + (2 if es_flags & 0x80 else 0) + (2 if es_flags & 0x20 else 0)
    if es_flags & 0x40:  # URL_Flag: length-prefixed URL
        offset += 1 + data[offset]
    tag, offset, config_end = read_descriptor(data, offset, es_end)
    if tag != 0x04:
        return "mp4a"
    object_type = data[offset]
    tag, info, _ = read_descriptor(data, offset + 13, config_end)
    if tag != 0x05 or object_type != 0x40:
        return f"mp4a.{object_type:02x}"
    audio_object_type = data[info] >> 3
    if audio_object_type == 31:  # escape: 6 more bits follow (ISO 14496-3 1.6.2.1)
        audio_object_type = 32 + (((data[info] & 0x07) << 3) | (data[info + 1] >> 5))
    return f"mp4a.40.{audio_object_type}"


def codec_string(data: bytes, stsd: int, end: int) -> str:
    """Codecs string of the first sample entry in an stsd payload."""
    entry = next(iter_boxes(data, stsd + 8, end), None)  # full box header + entry_count
    if entry is None:
        return ""
    fourcc, payload, entry_end = entry
    name = fourcc.decode("latin-1")
    if fourcc in (b"avc1", b"avc3", b"hvc1", b"hev1"):
        config_type = b"avcC" if fourcc.startswith(b"avc") else b"hvcC"
        config = find_box(data, payload + 78, entry_end, (config_type,))  # after VisualSampleEntry
        if config is None:
            return name
        maker = avc_codec if config_type == b"avcC" else hevc_codec
        return maker(name, data, config[0])
    if fourcc == b"mp4a":
        # AudioSampleEntry is 28 bytes; QuickTime sound description v1/v2 add 16/36.
        version = struct.unpack_from(">H", data, payload + 8)[0]
        esds = find_box(data, payload + 28 + {1: 16, 2: 36}.get(version, 0), entry_end, (b"esds",))
        return mp4a_codec(data, esds[0], esds[1]) if esds else "mp4a"
    return "opus" if fourcc == b"Opus" else name


def parse_trak(data: bytes, start: int, end: int) -> tuple[TrackInfo, int | None, int | None]:
    """TrackInfo plus the tkhd width and height (integer pixels) of one trak box."""
    tkhd = find_box(data, start, end, (b"tkhd",))
    mdhd = find_box(data, start, end, (b"mdia", b"mdhd"))
    hdlr = find_box(data, start, end, (b"mdia", b"hdlr"))
    stsd = find_box(data, start, end, (b"mdia", b"minf", b"stbl", b"stsd"))
    if tkhd is None or mdhd is None or hdlr is None:
        raise Fmp4Error("trak without tkhd, mdhd or hdlr")
    track_id = struct.unpack_from(">I", data, tkhd[0] + (20 if data[tkhd[0]] == 1 else 12))[0]
    timescale = struct.unpack_from(">I", data, mdhd[0] + (20 if data[mdhd[0]] == 1 else 12))[0]
    if timescale == 0:
        raise Fmp4Error(f"track {track_id} has timescale 0")
    handler = data[hdlr[0] + 8 : hdlr[0] + 12]
    width, height = struct.unpack_from(">II", data, tkhd[1] - 8)
    codec = codec_string(data, *stsd) if stsd else ""
    info = TrackInfo(
        track_id, HANDLER_KINDS.get(handler, handler.decode("latin-1")), timescale, codec
    )
    return info, width >> 16, height >> 16


def parse_init(data: bytes) -> InitSegment:
    """InitSegment from ftyp+moov bytes, with the trex defaults folded into each TrackInfo."""
    moov = find_box(data, 0, len(data), (b"moov",))
    if moov is None:
        raise Fmp4Error("init segment without moov")
    tracks: list[TrackInfo] = []
    sizes: dict[int, tuple[int | None, int | None]] = {}
    defaults: dict[int, tuple[int, int]] = {}
    for box_type, payload, end in iter_boxes(data, *moov):
        if box_type == b"trak":
            info, width, height = parse_trak(data, payload, end)
            tracks.append(info)
            sizes[info.track_id] = (width, height)
        elif box_type == b"mvex":
            for child, trex, _ in iter_boxes(data, payload, end):
                if child == b"trex":
                    track_id, _, duration, _, flags = struct.unpack_from(">5I", data, trex + 4)
                    defaults[track_id] = (duration, flags)
    tracks = [
        TrackInfo(t.track_id, t.kind, t.timescale, t.codec, *defaults.get(t.track_id, (0, 0)))
        for t in tracks
    ]
    video = next((t.track_id for t in tracks if t.kind == "video"), None)
    width, height = sizes.get(video, (None, None)) if video is not None else (None, None)
    return InitSegment(data, tuple(tracks), video, width, height)


def parse_trun(data: bytes, start: int, end: int) -> tuple[int, list[int | None], int | None]:
    """(sample count, per-sample durations or None, first sample flags or None) of a trun."""
    flags = int.from_bytes(data[start + 1 : start + 4], "big")
    (count,) = struct.unpack_from(">I", data, start + 4)
    offset = start + 8 + (4 if flags & 0x1 else 0)
    first_flags = None
    if flags & 0x4:
        (first_flags,) = struct.unpack_from(">I", data, offset)
        offset += 4
    fields = [flags & bit != 0 for bit in (0x100, 0x200, 0x400, 0x800)]
    stride = 4 * sum(fields)
    if offset + count * stride > end:
        raise Fmp4Error(f"trun with {count} samples overruns its box")
    durations: list[int | None] = []
    for index in range(count):
        sample = offset + index * stride
        durations.append(struct.unpack_from(">I", data, sample)[0] if fields[0] else None)
        if index == 0 and first_flags is None and fields[2]:
            (first_flags,) = struct.unpack_from(">I", data, sample + 4 * sum(fields[:2]))
    return count, durations, first_flags


def parse_traf(data: bytes, start: int, end: int, tracks: dict[int, TrackInfo]) -> TrafFacts:
    """Decode time, sample count, summed duration and first sample flags of one traf."""
    tfhd = find_box(data, start, end, (b"tfhd",))
    if tfhd is None:
        raise Fmp4Error("traf without tfhd")
    flags = int.from_bytes(data[tfhd[0] + 1 : tfhd[0] + 4], "big")
    (track_id,) = struct.unpack_from(">I", data, tfhd[0] + 4)
    track = tracks.get(track_id)
    if track is None:
        raise Fmp4Error(f"traf for track {track_id}, which the moov does not declare")
    offset = tfhd[0] + 8 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
    default_duration, default_flags = track.default_sample_duration, track.default_sample_flags
    if flags & 0x8:
        (default_duration,) = struct.unpack_from(">I", data, offset)
    offset += (4 if flags & 0x8 else 0) + (4 if flags & 0x10 else 0)
    if flags & 0x20:
        (default_flags,) = struct.unpack_from(">I", data, offset)
    base_time, count, duration, first_flags = None, 0, 0, None
    for box_type, payload, box_end in iter_boxes(data, start, end):
        if box_type == b"tfdt":
            wide = data[payload] == 1
            (base_time,) = struct.unpack_from(">Q" if wide else ">I", data, payload + 4)
        elif box_type == b"trun":
            run_count, durations, run_flags = parse_trun(data, payload, box_end)
            if count == 0 and run_count:
                first_flags = run_flags
            count += run_count
            duration += sum(default_duration if d is None else d for d in durations)
    first = default_flags if first_flags is None else first_flags
    return TrafFacts(track_id, base_time, count, duration, first)


class Fmp4Reader:
    """Feed it the pipe's bytes in any chunking; it returns init segments and fragments."""

    def __init__(self, max_box_bytes: int = 64 * 1024 * 1024) -> None:
        self._max_box_bytes = max_box_bytes
        self._buffer = bytearray()
        self._ftyp = b""
        self._pending: list[bytes] = []  # prefix boxes, then the moof and anything up to its mdat
        self._moof: list[TrafFacts] | None = None
        self._tracks: dict[int, TrackInfo] = {}
        self._primary: TrackInfo | None = None
        self._video_id: int | None = None
        self._next_decode: dict[int, int] = {}

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) + sum(len(box) for box in self._pending) + len(self._ftyp)

    def feed(self, data: bytes) -> list[InitSegment | Fragment]:
        self._buffer += data
        out: list[InitSegment | Fragment] = []
        while (box := self._take_box()) is not None:
            item = self._on_box(*box)
            if item is not None:
                out.append(item)
        return out

    def _take_box(self) -> tuple[bytes, bytes] | None:
        header = box_header(self._buffer)
        if header is None:
            return None
        size, box_type, _ = header
        if not is_fourcc(box_type):
            raise Fmp4Error(f"not an MP4 box: type bytes {box_type!r}")
        if size > self._max_box_bytes:
            raise Fmp4Error(f"box {box_type!r} of {size} bytes exceeds {self._max_box_bytes}")
        if len(self._buffer) < size:
            return None
        box = bytes(self._buffer[:size])
        del self._buffer[:size]
        return box_type, box

    def _on_box(self, box_type: bytes, box: bytes) -> InitSegment | Fragment | None:
        try:
            return self._dispatch(box_type, box)
        except (struct.error, IndexError) as error:  # a field reaches past the end of its box
            raise Fmp4Error(f"truncated field in {box_type.decode()}: {error}") from error

    def _dispatch(self, box_type: bytes, box: bytes) -> InitSegment | Fragment | None:
        if box_type == b"mdat":
            if self._moof is None:
                raise Fmp4Error("mdat without a moof before it")
            return self._fragment(box)
        if box_type in (b"ftyp", b"moov", b"moof") and self._moof is not None:
            raise Fmp4Error(f"{box_type.decode()} where the mdat of the last moof was expected")
        if box_type == b"ftyp":
            self._ftyp = box
        elif box_type == b"moov":
            return self._init(box)
        elif box_type == b"moof":
            if not self._tracks:
                raise Fmp4Error("moof before the init segment")
            self._moof = [
                parse_traf(box, payload, end, self._tracks)
                for child, payload, end in iter_boxes(box, 8, len(box))
                if child == b"traf"
            ]
            self._pending.append(box)
        elif self._moof is not None or box_type in FRAGMENT_PREFIX_BOXES:
            self._pending.append(box)  # kept: trun data offsets count these bytes
        return None

    def _init(self, moov: bytes) -> InitSegment:
        init = parse_init(self._ftyp + moov)
        self._ftyp = b""
        self._pending = []
        self._tracks = {track.track_id: track for track in init.tracks}
        self._video_id = init.video_track_id
        primary_id = init.video_track_id
        self._primary = self._tracks.get(primary_id) if primary_id is not None else None
        if self._primary is None and init.tracks:
            self._primary = init.tracks[0]
        self._next_decode = {}
        return init

    def _fragment(self, mdat: bytes) -> Fragment:
        trafs, self._moof = self._moof or [], None
        data = b"".join([*self._pending, mdat])
        self._pending = []
        starts: dict[int, int] = {}
        for traf in trafs:
            base = traf.base_decode_time
            if base is None:  # no tfdt: continue from where this track's last fragment ended
                base = self._next_decode.get(traf.track_id, 0)
            starts.setdefault(traf.track_id, base)
            self._next_decode[traf.track_id] = base + traf.duration
        primary = [t for t in trafs if self._primary and t.track_id == self._primary.track_id]
        # An audio-only fragment has no primary traf: its own start is the best time we have.
        timed = primary[0] if primary else (trafs[0] if trafs else None)
        start_s = 0.0
        if timed is not None:
            start_s = starts[timed.track_id] / self._tracks[timed.track_id].timescale
        timescale = self._primary.timescale if self._primary else 1
        video = [t for t in trafs if t.track_id == self._video_id and t.sample_count]
        return Fragment(
            data=data,
            start_s=start_s,
            duration_s=sum(t.duration for t in primary) / timescale,
            video_samples=sum(t.sample_count for t in video),
            keyframe=bool(video) and not video[0].first_sample_flags & SAMPLE_IS_NON_SYNC,
        )
