"""The samples of one fMP4 fragment (payload bytes, timing and sync flag of each) and the sample
entry that describes a track's codec in the init segment.

`camgate.fmp4` reads only what the HLS segmenter needs and never looks at payloads; WebRTC
sends every picture on its own, so it needs the samples themselves. Pure: bytes in, samples out,
no I/O. A fragment whose tables do not fit its bytes raises `Fmp4Error`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from camgate.fmp4 import (
    SAMPLE_IS_NON_SYNC,
    Fmp4Error,
    InitSegment,
    TrackInfo,
    find_box,
    iter_boxes,
)

# tfhd flags (ISO 14496-12 8.8.7.1)
TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_SAMPLE_DESCRIPTION = 0x000002
TFHD_DEFAULT_DURATION = 0x000008
TFHD_DEFAULT_SIZE = 0x000010
TFHD_DEFAULT_FLAGS = 0x000020
# trun flags (ISO 14496-12 8.8.8.1)
TRUN_DATA_OFFSET = 0x001
TRUN_FIRST_FLAGS = 0x004
TRUN_DURATION = 0x100
TRUN_SIZE = 0x200
TRUN_FLAGS = 0x400
TRUN_COMPOSITION = 0x800
STSD_PATH = (b"mdia", b"minf", b"stbl", b"stsd")


@dataclass(frozen=True)
class Sample:
    """One sample as the MP4 stores it (a picture in AVCC for H.264, an AAC frame), times in the
    track's timescale."""

    data: bytes
    decode_time: int
    composition_offset: int
    duration: int
    keyframe: bool

    @property
    def presentation_time(self) -> int:
        return self.decode_time + self.composition_offset


@dataclass(frozen=True)
class TrackDefaults:
    """What tfhd (over trex) says a sample has when its trun leaves a field out."""

    base_offset: int
    duration: int
    size: int
    flags: int


def track_defaults(box: bytes, tfhd: int, moof_start: int, track: TrackInfo) -> TrackDefaults:
    flags = int.from_bytes(box[tfhd + 1 : tfhd + 4], "big")
    offset = tfhd + 8
    base = moof_start  # default-base-is-moof (FFmpeg's default_base_moof)
    if flags & TFHD_BASE_DATA_OFFSET:
        (base,) = struct.unpack_from(">Q", box, offset)
        offset += 8
    offset += 4 if flags & TFHD_SAMPLE_DESCRIPTION else 0
    values = {"duration": track.default_sample_duration, "size": 0}
    values["flags"] = track.default_sample_flags
    for flag, name in (
        (TFHD_DEFAULT_DURATION, "duration"),
        (TFHD_DEFAULT_SIZE, "size"),
        (TFHD_DEFAULT_FLAGS, "flags"),
    ):
        if flags & flag:
            (values[name],) = struct.unpack_from(">I", box, offset)
            offset += 4
    return TrackDefaults(base, values["duration"], values["size"], values["flags"])


def trun_samples(
    data: bytes, trun: int, end: int, defaults: TrackDefaults, decode_time: int
) -> list[Sample]:
    """The samples one trun describes, their payloads cut out of ``data``."""
    flags = int.from_bytes(data[trun + 1 : trun + 4], "big")
    (count,) = struct.unpack_from(">I", data, trun + 4)
    offset = trun + 8
    position = defaults.base_offset
    if flags & TRUN_DATA_OFFSET:
        position += struct.unpack_from(">i", data, offset)[0]
        offset += 4
    first_flags = None
    if flags & TRUN_FIRST_FLAGS:
        (first_flags,) = struct.unpack_from(">I", data, offset)
        offset += 4
    present = [bool(flags & bit) for bit in (TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS)]
    present.append(bool(flags & TRUN_COMPOSITION))
    if offset + count * 4 * sum(present) > end:
        raise Fmp4Error(f"trun with {count} samples overruns its box")
    samples = []
    for index in range(count):
        fields = [defaults.duration, defaults.size, defaults.flags, 0]
        for slot, is_present in enumerate(present):
            if is_present:
                fmt = ">i" if slot == 3 else ">I"  # version 1: signed composition offsets
                (fields[slot],) = struct.unpack_from(fmt, data, offset)
                offset += 4
        duration, size, sample_flags, composition = fields
        if index == 0 and first_flags is not None:
            sample_flags = first_flags
        if size <= 0 or position + size > len(data):
            raise Fmp4Error(f"sample of {size} bytes at {position} lies outside the fragment")
        keyframe = not sample_flags & SAMPLE_IS_NON_SYNC
        payload = data[position : position + size]
        samples.append(Sample(payload, decode_time, composition, duration, keyframe))
        position += size
        decode_time += duration
    return samples


def track_samples(data: bytes, track: TrackInfo, next_decode_time: int = 0) -> list[Sample]:
    """Every sample of ``track`` in a fragment (prefix boxes, moof, mdat), in decode order.

    ``next_decode_time`` is used when a traf has no tfdt (where the last fragment ended)."""
    try:
        return _track_samples(data, track, next_decode_time)
    except (struct.error, IndexError) as error:
        raise Fmp4Error(f"truncated fragment: {error}") from error


def _track_samples(data: bytes, track: TrackInfo, next_decode_time: int) -> list[Sample]:
    samples: list[Sample] = []
    box_start = 0  # top-level boxes are contiguous: each starts where the last ended
    for box_type, payload, end in iter_boxes(data, 0, len(data)):
        moof_start, box_start = box_start, end
        if box_type != b"moof":
            continue
        for child, traf, traf_end in iter_boxes(data, payload, end):
            if child != b"traf":
                continue
            tfhd = find_box(data, traf, traf_end, (b"tfhd",))
            if tfhd is None or struct.unpack_from(">I", data, tfhd[0] + 4)[0] != track.track_id:
                continue
            defaults = track_defaults(data, tfhd[0], moof_start, track)
            decode_time = next_decode_time
            tfdt = find_box(data, traf, traf_end, (b"tfdt",))
            if tfdt is not None:
                wide = data[tfdt[0]] == 1
                (decode_time,) = struct.unpack_from(">Q" if wide else ">I", data, tfdt[0] + 4)
            for run_type, trun, trun_end in iter_boxes(data, traf, traf_end):
                if run_type == b"trun":
                    run = trun_samples(data, trun, trun_end, defaults, decode_time)
                    samples += run
                    if run:
                        decode_time = run[-1].decode_time + run[-1].duration
    return samples


def sample_entry(init: InitSegment, handler: bytes) -> tuple[bytes, bytes] | None:
    """(fourcc, entry payload) of the first sample entry of the first track whose handler is
    ``handler`` (``b"vide"``, ``b"soun"``)."""
    data = init.data
    moov = find_box(data, 0, len(data), (b"moov",))
    if moov is None:
        return None
    for box_type, trak, trak_end in iter_boxes(data, *moov):
        if box_type != b"trak":
            continue
        hdlr = find_box(data, trak, trak_end, (b"mdia", b"hdlr"))
        stsd = find_box(data, trak, trak_end, STSD_PATH)
        if hdlr is None or stsd is None or data[hdlr[0] + 8 : hdlr[0] + 12] != handler:
            continue
        entry = next(iter_boxes(data, stsd[0] + 8, stsd[1]), None)  # full box + entry_count
        if entry is not None:
            fourcc, payload, end = entry
            return fourcc, data[payload:end]
    return None
