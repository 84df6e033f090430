"""SnapshotSink: which keyframe it keeps, one decode per (keyframe, width) however many ask,
a bounded cache, and the real FFmpeg turning captured fragments (data/) into JPEGs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from camgate.outputs.snapshot import (
    DecodeFailed,
    FfmpegJpegDecoder,
    SingleFlightCache,
    SnapshotSink,
    SnapshotUnavailable,
    jpeg_argv,
    output_width,
)
from camgate.outputs.snapshot.sink import CACHE_ENTRIES, VIEWER_SEEN_S

DATA = Path(__file__).parent / "data"
FIXTURE = "av_every_frame_ff5.mp4"  # 160x90 H.264 + AAC, 3 keyframes, a fragment per packet
SOURCE_WIDTH, SOURCE_HEIGHT = 160, 90
SOI = b"\xff\xd8"  # every JPEG starts with a start-of-image marker


def fixture_stream(name: str = FIXTURE) -> tuple[InitSegment, list[Fragment]]:
    init, *fragments = Fmp4Reader().feed((DATA / name).read_bytes())
    assert isinstance(init, InitSegment)
    return init, [f for f in fragments if isinstance(f, Fragment)]


def video_keyframes(fragments: list[Fragment]) -> list[Fragment]:
    return [f for f in fragments if f.keyframe and f.video_samples]


class FakeDecoder:
    """Stands in for FFmpeg: counts calls, can be held open, returns bytes naming its input."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, int | None]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.failure: Exception | None = None

    async def __call__(self, mp4: bytes, width: int | None) -> bytes:
        self.calls.append((mp4, width))
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return SOI + f"jpeg {len(self.calls)} width {width}".encode()


def streaming_sink(
    decoder: FakeDecoder, keyframes: int = 1, clock: list[float] | None = None
) -> tuple[SnapshotSink, list[Fragment]]:
    """A sink fed the fixture up to and including its `keyframes`-th video keyframe."""
    ticks = clock if clock is not None else [0.0]
    sink = SnapshotSink("cam", decoder, monotonic=lambda: ticks[0])
    init, fragments = fixture_stream()
    sink.set_init(init)
    seen = 0
    for index, fragment in enumerate(fragments):
        sink.add_fragment(fragment)
        seen += bool(fragment.keyframe and fragment.video_samples)
        if seen == keyframes:
            return sink, fragments[index + 1 :]
    raise AssertionError(f"the fixture has fewer than {keyframes} keyframes")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)  # let every task run up to its next await


# --- what the sink keeps ---


def test_it_keeps_only_the_latest_video_keyframe() -> None:
    init, fragments = fixture_stream()
    sink = SnapshotSink("cam", FakeDecoder())
    sink.set_init(init)
    assert not sink.ready

    for fragment in fragments:
        sink.add_fragment(fragment)

    last = video_keyframes(fragments)[-1]
    assert sink.ready
    assert sink.keyframe_seq == len(video_keyframes(fragments)) == 3
    stats = sink.stats()
    assert stats.keyframes == 3
    assert stats.bytes_held == len(init.data) + len(last.data)


def test_a_keyframe_before_any_init_segment_is_ignored() -> None:
    _, fragments = fixture_stream()
    sink = SnapshotSink("cam", FakeDecoder())
    sink.add_fragment(video_keyframes(fragments)[0])
    assert not sink.ready


async def test_no_keyframe_yet_is_unavailable() -> None:
    init, _ = fixture_stream()
    sink = SnapshotSink("cam", FakeDecoder())
    sink.set_init(init)
    with pytest.raises(SnapshotUnavailable, match="no keyframe yet"):
        await sink.jpeg()


async def test_the_end_of_an_ffmpeg_run_drops_its_picture() -> None:
    sink, _ = streaming_sink(FakeDecoder())
    sink.discontinuity()
    assert not sink.ready
    with pytest.raises(SnapshotUnavailable):
        await sink.jpeg()


def test_a_new_init_segment_drops_a_keyframe_of_the_old_one() -> None:
    sink, _ = streaming_sink(FakeDecoder())
    init, _ = fixture_stream()
    sink.set_init(init)  # the same init again (a repeated moov): the keyframe still decodes
    assert sink.ready
    sink.set_init(dataclasses.replace(init, data=init.data + b"\0\0\0\x08free"))
    assert not sink.ready


# --- one decode per keyframe and width ---


async def test_concurrent_requests_share_one_decode() -> None:
    decoder = FakeDecoder()
    decoder.release.clear()
    sink, _ = streaming_sink(decoder)

    requests = [asyncio.create_task(sink.jpeg()) for _ in range(20)]
    await settle()
    assert sink.consumers == 20
    decoder.release.set()
    jpegs = await asyncio.gather(*requests)

    assert len(decoder.calls) == 1
    assert len(set(jpegs)) == 1 and jpegs[0].startswith(SOI)
    stats = sink.stats()
    assert (stats.decodes, stats.shared_decodes, stats.cache_hits) == (1, 19, 0)
    assert stats.bytes_sent == 20 * len(jpegs[0])


async def test_later_requests_for_the_same_keyframe_hit_the_cache() -> None:
    decoder = FakeDecoder()
    sink, _ = streaming_sink(decoder)
    first = await sink.jpeg(64)
    assert [await sink.jpeg(64) for _ in range(5)] == [first] * 5
    assert len(decoder.calls) == 1
    assert sink.stats().cache_hits == 5
    assert sink.stats().last_decode_ms is not None


async def test_a_new_keyframe_is_decoded_anew() -> None:
    decoder = FakeDecoder()
    sink, rest = streaming_sink(decoder)
    first = await sink.jpeg()
    for fragment in rest:
        sink.add_fragment(fragment)
        if fragment.keyframe and fragment.video_samples:
            break
    second = await sink.jpeg()
    assert first != second
    assert len(decoder.calls) == 2
    assert decoder.calls[0][0] != decoder.calls[1][0]  # another keyframe went to the decoder


async def test_each_width_is_decoded_once_and_never_scaled_up() -> None:
    decoder = FakeDecoder()
    sink, _ = streaming_sink(decoder)
    await sink.jpeg(64)
    await sink.jpeg(80)
    await sink.jpeg(None)
    await sink.jpeg(SOURCE_WIDTH)  # the picture as it is, like no width
    await sink.jpeg(3840)
    assert [width for _, width in decoder.calls] == [64, 80, None]


def test_output_width_keeps_only_a_width_that_shrinks_the_picture() -> None:
    assert output_width(None, 640) is None
    assert output_width(320, 640) == 320
    assert output_width(640, 640) is None
    assert output_width(1920, 640) is None
    assert output_width(320, None) == 320


async def test_the_cache_is_bounded() -> None:
    decoder = FakeDecoder()
    sink, _ = streaming_sink(decoder)
    init, fragments = fixture_stream()
    widths = range(20, 20 + 4 * CACHE_ENTRIES)
    jpegs = [await sink.jpeg(width) for width in widths]

    held = len(init.data) + len(video_keyframes(fragments)[0].data)
    largest = max(len(jpeg) for jpeg in jpegs)
    assert sink.stats().bytes_held <= held + CACHE_ENTRIES * largest
    await sink.jpeg(widths[0])  # evicted long ago: decoded again
    assert len(decoder.calls) == len(widths) + 1


async def test_a_request_that_goes_away_leaves_the_shared_decode_running() -> None:
    decoder = FakeDecoder()
    decoder.release.clear()
    sink, _ = streaming_sink(decoder)
    leaver, stayer = asyncio.create_task(sink.jpeg()), asyncio.create_task(sink.jpeg())
    await settle()
    leaver.cancel()
    await settle()
    decoder.release.set()
    assert (await stayer).startswith(SOI)
    assert len(decoder.calls) == 1


async def test_a_keyframe_that_does_not_decode_is_not_tried_again() -> None:
    decoder = FakeDecoder()
    decoder.failure = DecodeFailed("FFmpeg exited 1: Invalid data found")
    sink, rest = streaming_sink(decoder)
    for _ in range(3):
        with pytest.raises(SnapshotUnavailable, match="could not be decoded"):
            await sink.jpeg()
    assert len(decoder.calls) == 1
    assert sink.stats().decode_failures == 1

    decoder.failure = None
    for fragment in rest:  # the next keyframe gets a new try
        sink.add_fragment(fragment)
    assert (await sink.jpeg()).startswith(SOI)
    assert len(decoder.calls) == 2


async def test_close_cancels_a_running_decode() -> None:
    decoder = FakeDecoder()
    decoder.release.clear()
    sink, _ = streaming_sink(decoder)
    request = asyncio.create_task(sink.jpeg())
    await settle()
    sink.close()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert not sink.ready
    with pytest.raises(SnapshotUnavailable, match="has stopped"):
        await sink.jpeg()


async def test_decodes_wait_for_a_free_slot() -> None:
    decoder = FakeDecoder()
    decoder.release.clear()
    sink, _ = streaming_sink(decoder)
    sink._slots = asyncio.Semaphore(1)
    requests = [asyncio.create_task(sink.jpeg(width)) for width in (32, 48)]
    await settle()
    assert len(decoder.calls) == 1  # the second width waits for the one slot
    decoder.release.set()
    await asyncio.gather(*requests)
    assert len(decoder.calls) == 2


async def test_consumers_are_recent_requests() -> None:
    clock = [100.0]
    sink, _ = streaming_sink(FakeDecoder(), clock=clock)
    assert sink.consumers == 0
    await sink.jpeg()
    assert sink.consumers == 1
    clock[0] += VIEWER_SEEN_S + 0.1
    assert sink.consumers == 0


async def test_single_flight_cache_rejects_no_entries() -> None:
    with pytest.raises(ValueError):
        SingleFlightCache[str, bytes](0)


# --- the real FFmpeg ---


def probe_jpeg(data: bytes, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "snapshot.jpg"
    path.write_bytes(data)
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    (stream,) = json.loads(result.stdout)["streams"]
    assert isinstance(stream, dict)
    return stream


def first_keyframe_mp4(init: InitSegment, fragments: list[Fragment]) -> bytes:
    return init.data + video_keyframes(fragments)[0].data


def test_jpeg_argv_reads_stdin_and_writes_one_frame_to_stdout() -> None:
    argv = jpeg_argv("ffmpeg", 320)
    assert argv[0] == "ffmpeg"
    assert argv[argv.index("-i") + 1] == "pipe:0" and argv[-1] == "pipe:1"
    assert argv[argv.index("-frames:v") + 1] == "1"
    assert argv[argv.index("-vf") + 1] == "scale=320:-2"
    assert "-vf" not in jpeg_argv("ffmpeg", None)


@pytest.mark.parametrize(("width", "size"), [(None, (160, 90)), (64, (64, 36))])
async def test_ffmpeg_decodes_a_captured_keyframe_to_a_jpeg(
    width: int | None, size: tuple[int, int], tmp_path: Path
) -> None:
    init, fragments = fixture_stream()
    jpeg = await FfmpegJpegDecoder("ffmpeg")(first_keyframe_mp4(init, fragments), width)
    stream = probe_jpeg(jpeg, tmp_path)
    assert stream["codec_name"] == "mjpeg"
    assert (stream["width"], stream["height"]) == size


async def test_the_sink_decodes_the_latest_keyframe_with_ffmpeg(tmp_path: Path) -> None:
    init, fragments = fixture_stream("video_every_frame_ff9.mp4")
    sink = SnapshotSink("cam", FfmpegJpegDecoder("ffmpeg"))
    sink.set_init(init)
    for fragment in fragments:
        sink.add_fragment(fragment)
    jpeg = await sink.jpeg(80)
    stream = probe_jpeg(jpeg, tmp_path)
    assert (stream["width"], stream["height"]) == (80, 46)  # 45 rounded to an even height
    assert sink.stats().decodes == 1


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg on PATH")
async def test_ffmpeg_decodes_an_h265_keyframe(tmp_path: Path) -> None:
    """H.265 cameras get snapshots too, though most browsers cannot play their stream."""
    encoders = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30
    ).stdout
    if "libx265" not in encoders:
        pytest.skip("this FFmpeg has no H.265 encoder to make the test stream")
    source = tmp_path / "hevc.mp4"
    subprocess.run(
        [
            *("ffmpeg", "-hide_banner", "-loglevel", "error"),
            *("-f", "lavfi", "-i", "testsrc=size=192x108:rate=25", "-t", "0.2"),
            *("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"),
            *("-tag:v", "hvc1", "-pix_fmt", "yuv420p", "-f", "mp4"),
            *("-movflags", "empty_moov+default_base_moof+frag_keyframe", "-frag_duration", "1"),
            str(source),
        ],
        check=True,
        timeout=60,
    )
    init, *items = Fmp4Reader().feed(source.read_bytes())
    assert isinstance(init, InitSegment) and init.codecs.startswith("hvc1")
    fragments = [item for item in items if isinstance(item, Fragment)]

    jpeg = await FfmpegJpegDecoder("ffmpeg")(first_keyframe_mp4(init, fragments), 96)
    stream = probe_jpeg(jpeg, tmp_path)
    assert (stream["width"], stream["height"]) == (96, 54)


async def test_a_corrupt_keyframe_fails_with_a_reason() -> None:
    init, fragments = fixture_stream()
    keyframe = video_keyframes(fragments)[0].data
    garbage = keyframe[:200] + bytes(len(keyframe) - 200)  # moof kept, the picture zeroed
    with pytest.raises(DecodeFailed, match="FFmpeg exited"):
        await FfmpegJpegDecoder("ffmpeg")(init.data + garbage, None)


async def test_a_decoder_that_hangs_is_killed_at_the_deadline(tmp_path: Path) -> None:
    hanging = tmp_path / "ffmpeg"
    pid_file = tmp_path / "pid"
    hanging.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    hanging.chmod(0o755)
    with pytest.raises(DecodeFailed, match="longer than 0.5 s"):
        await FfmpegJpegDecoder(str(hanging), timeout_s=0.5)(b"\0" * 100_000, None)
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped, not left as a zombie
