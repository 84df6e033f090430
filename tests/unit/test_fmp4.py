"""The fMP4 reader on real FFmpeg output (data/, see make_fixtures.py) and on hand-built boxes."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest

from camgate.fmp4 import Fmp4Error, Fmp4Reader, Fragment, InitSegment, box_header, hevc_codec

DATA = Path(__file__).parent / "data"
FIXTURES = ["av_every_frame_ff5.mp4", "video_every_frame_ff9.mp4", "av_frag180_ff9.mp4"]
EXPECTED = json.loads((DATA / "expected.json").read_text())


def read_all(data: bytes, chunks: list[int] | None = None) -> list[InitSegment | Fragment]:
    reader = Fmp4Reader()
    items: list[InitSegment | Fragment] = []
    offset = 0
    for size in chunks or [len(data)]:
        items += reader.feed(data[offset : offset + size])
        offset += size
    assert offset == len(data)
    return items


def split(items: list[InitSegment | Fragment]) -> tuple[InitSegment, list[Fragment]]:
    init, *fragments = items
    assert isinstance(init, InitSegment)
    assert all(isinstance(fragment, Fragment) for fragment in fragments)
    return init, [f for f in fragments if isinstance(f, Fragment)]


# --- real FFmpeg output ---


@pytest.mark.parametrize("name", FIXTURES)
def test_real_output_matches_what_ffprobe_sees(name: str) -> None:
    data = (DATA / name).read_bytes()
    init, fragments = split(read_all(data))
    expected = EXPECTED[name]

    assert sum(f.video_samples for f in fragments) == expected["video_packets"]
    assert sum(f.keyframe for f in fragments) == expected["video_keyframes"]
    assert next(f for f in fragments if f.video_samples).keyframe
    assert (init.width, init.height) == (160, 90)
    assert init.codecs.split(",")[0] == "avc1.42c00b"
    assert ("mp4a.40.2" in init.codecs) == (expected["audio_packets"] > 0)
    # Every byte except FFmpeg's trailing mfra (written only to seekable files) is handed on.
    joined = init.data + b"".join(f.data for f in fragments)
    assert data.startswith(joined)
    assert box_header(data, len(joined))[1] == b"mfra"  # type: ignore[index]


@pytest.mark.parametrize("name", FIXTURES)
def test_video_fragments_are_contiguous_in_time(name: str) -> None:
    _, fragments = split(read_all((DATA / name).read_bytes()))
    video = [f for f in fragments if f.video_samples]
    for before, after in zip(video, video[1:], strict=False):
        assert after.start_s == pytest.approx(before.start_s + before.duration_s, abs=1e-9)
    assert sum(f.duration_s for f in video) == pytest.approx(3.0, abs=0.1)


def test_audio_fragments_have_no_primary_duration() -> None:
    _, fragments = split(read_all((DATA / "av_every_frame_ff5.mp4").read_bytes()))
    audio = [f for f in fragments if not f.video_samples]
    assert len(audio) == EXPECTED["av_every_frame_ff5.mp4"]["audio_packets"]
    assert all(f.duration_s == 0 and not f.keyframe for f in audio)


@pytest.mark.parametrize("name", FIXTURES)
def test_any_chunking_gives_the_same_result(name: str) -> None:
    data = (DATA / name).read_bytes()
    whole = read_all(data)
    rng = random.Random(name)
    sizes: list[int] = []
    while sum(sizes) < len(data):
        sizes.append(min(rng.randint(1, 5000), len(data) - sum(sizes)))
    assert read_all(data, sizes) == whole
    assert read_all(data, [1] * len(data)) == whole


def test_multi_sample_fragments_hold_audio_and_video_trafs() -> None:
    _, fragments = split(read_all((DATA / "av_frag180_ff9.mp4").read_bytes()))
    assert max(f.video_samples for f in fragments) == 5
    assert all(f.video_samples for f in fragments)  # audio rides in the same moof
    assert all(f.data.count(b"traf") == 2 for f in fragments)


# --- hand-built boxes ---


def box(box_type: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), box_type) + body


def full_box(box_type: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(box_type, struct.pack(">I", (version << 24) | flags), *payload)


def trak(track_id: int, handler: bytes, timescale: int, entry: bytes) -> bytes:
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">5I", 0, 0, track_id, 0, 0), bytes(52))
    tkhd += struct.pack(">II", 640 << 16, 360 << 16)
    tkhd = struct.pack(">I", len(tkhd)) + tkhd[4:]
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">4I", 0, 0, timescale, 0), bytes(4))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, handler), bytes(13))
    stsd = full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry)
    minf = box(b"minf", box(b"stbl", stsd))
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def trex(track_id: int, duration: int, flags: int) -> bytes:
    return full_box(b"trex", 0, 0, struct.pack(">5I", track_id, 1, duration, 0, flags))


AVC1 = box(b"avc1", bytes(78), box(b"avcC", bytes([1, 0x64, 0x00, 0x1F, 0xFF])))
ESDS = bytes([0x03, 25, 0, 1, 0, 0x04, 17, 0x40, 0x15]) + bytes(11) + bytes([0x05, 2, 0x12, 0x10])
MP4A = box(b"mp4a", bytes(28), full_box(b"esds", 0, 0, ESDS))
NON_SYNC = 0x01010000
FTYP = box(b"ftyp", b"isom", bytes(4), b"isomiso6")
MOOV = box(
    b"moov",
    trak(1, b"vide", 90000, AVC1),
    trak(2, b"soun", 48000, MP4A),
    box(b"mvex", trex(1, 3600, NON_SYNC), trex(2, 1024, 0)),
)


def traf(track_id: int, decode_time: int, trun: bytes, tfhd_flags: int = 0, *extra: int) -> bytes:
    tfhd = full_box(
        b"tfhd", 0, 0x20000 | tfhd_flags, struct.pack(">I", track_id), *extra_fields(extra)
    )
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", decode_time))
    return box(b"traf", tfhd, tfdt, trun)


def extra_fields(values: tuple[int, ...]) -> list[bytes]:
    return [struct.pack(">I", value) for value in values]


def fragment_bytes(*trafs: bytes, mdat: bytes = b"\x00" * 16) -> bytes:
    moof = box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", 1)), *trafs)
    return moof + box(b"mdat", mdat)


def keyframe_fragment() -> bytes:
    # Video: 2 samples, sizes only, first_sample_flags says sync; audio: 3 samples with durations.
    video_trun = full_box(
        b"trun", 0, 0x4 | 0x200, struct.pack(">II", 2, 0), struct.pack(">II", 8, 8)
    )
    audio_trun = full_box(
        b"trun", 0, 0x100, struct.pack(">I", 3), struct.pack(">3I", 1024, 1024, 960)
    )
    return fragment_bytes(traf(1, 180000, video_trun), traf(2, 96000, audio_trun))


def test_hand_built_fragment_with_two_trafs_uses_the_right_defaults() -> None:
    init, fragments = split(read_all(FTYP + MOOV + keyframe_fragment()))

    assert init.codecs == "avc1.64001f,mp4a.40.2"
    assert [t.kind for t in init.tracks] == ["video", "audio"]
    assert (init.width, init.height, init.video_track_id) == (640, 360, 1)
    assert fragments == [Fragment(fragments[0].data, 2.0, 0.08, 2, True)]


def test_sync_flag_comes_from_tfhd_default_when_trun_has_none() -> None:
    trun = full_box(b"trun", 0, 0, struct.pack(">I", 1))
    non_sync = traf(1, 0, trun, 0x20, NON_SYNC)
    sync = traf(1, 3600, trun, 0x8 | 0x20, 4500, 0x02000000)
    _, fragments = split(read_all(FTYP + MOOV + fragment_bytes(non_sync) + fragment_bytes(sync)))
    assert [(f.keyframe, f.duration_s) for f in fragments] == [(False, 0.04), (True, 0.05)]


def test_truncated_tail_stays_buffered_until_the_rest_arrives() -> None:
    tail = keyframe_fragment()
    reader = Fmp4Reader()
    assert len(reader.feed(FTYP + MOOV + tail[:-5])) == 1
    assert reader.buffered_bytes == len(tail) - 5
    (fragment,) = reader.feed(tail[-5:])
    assert fragment.data == tail
    assert reader.buffered_bytes == 0


def test_largesize_mdat_is_read() -> None:
    payload = b"\x01" * 40
    large_mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) + payload
    moof = keyframe_fragment()[: -len(box(b"mdat", bytes(16)))]
    _, fragments = split(read_all(FTYP + MOOV + moof + large_mdat))
    assert fragments[0].data.endswith(large_mdat)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (struct.pack(">I4s", 4, b"moof"), "smaller than its header"),
        (b"\x00\x00\x00\x10\xff\xfe\x00\x01" + bytes(8), "not an MP4 box"),
        (box(b"mdat", bytes(4)), "mdat without a moof"),
        (FTYP + fragment_bytes(b""), "moof before the init segment"),
        (FTYP + MOOV + box(b"moof") + box(b"moof"), "mdat of the last moof was expected"),
        (
            FTYP + box(b"moov", box(b"trak", struct.pack(">I4s", 99, b"tkhd"))),
            "overruns its parent",
        ),
        (FTYP + MOOV + fragment_bytes(traf(9, 0, b"")), "track 9"),
        (
            FTYP + MOOV + fragment_bytes(traf(1, 0, full_box(b"trun", 0, 0x100, b"\0\0\0\x09"))),
            "overruns",
        ),
    ],
)
def test_malformed_input_raises(stream: bytes, message: str) -> None:
    with pytest.raises(Fmp4Error, match=message):
        Fmp4Reader().feed(stream)


def test_oversized_box_raises_as_soon_as_its_header_is_seen() -> None:
    reader = Fmp4Reader(max_box_bytes=1024)
    with pytest.raises(Fmp4Error, match="exceeds 1024"):
        reader.feed(struct.pack(">I4s", 1025, b"mdat"))


def test_second_init_segment_is_reported_again() -> None:
    items = read_all(FTYP + MOOV + keyframe_fragment() + FTYP + MOOV + keyframe_fragment())
    assert [type(item).__name__ for item in items] == [
        "InitSegment",
        "Fragment",
        "InitSegment",
        "Fragment",
    ]
    assert items[2] == items[0]


def test_prefix_boxes_travel_with_their_fragment() -> None:
    styp = box(b"styp", b"msdh", bytes(4))
    _, fragments = split(read_all(FTYP + MOOV + box(b"free") + styp + keyframe_fragment()))
    assert fragments[0].data == styp + keyframe_fragment()


def test_hevc_codec_string_follows_iso_14496_15_annex_e() -> None:
    # Main profile, compatibility 0x60000000, level 93 (3.1), progressive+frame-only constraints.
    hvcc = bytes([1, 0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93])
    assert hevc_codec("hvc1", hvcc, 0) == "hvc1.1.6.L93.B0"
