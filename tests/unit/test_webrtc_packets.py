"""The WebRTC output fed packet by packet: FFmpeg's FLV output, its reader (camgate.flv), the sink."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from camgate.camera import CameraSpec, Overrides
from camgate.config import Settings
from camgate.ffmpeg import MediaInfo, stream_command
from camgate.ffmpeg.command import packet_output, sends_packets
from camgate.flv import AvcSequenceHeader, FlvError, FlvReader, VideoPacket
from camgate.outputs.webrtc.sink import WebRtcSink
from camgate.outputs.webrtc.viewer import RTP_CLOCK_HZ
from tests.support.captured import drain, fixture_stream

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "av_every_frame_ff5.mp4"  # 75 pictures at 25 fps, with AAC
FFMPEG = shutil.which("ffmpeg")


@pytest.fixture(scope="module")
def flv() -> bytes:
    """The fixture's video as FFmpeg's FLV muxer writes it to a pipe (the packet output)."""
    if FFMPEG is None:
        pytest.skip("no ffmpeg")
    argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-i", str(FIXTURE)]
    argv += ["-map", "0:v:0", "-c:v", "copy", "-an", "-flvflags", "no_duration_filesize"]
    return subprocess.run([*argv, "-f", "flv", "pipe:1"], capture_output=True, check=True).stdout




def test_the_reader_finds_the_configuration_then_every_picture_in_any_chunking(
    flv: bytes,
) -> None:
    whole = FlvReader().feed(flv)
    reader = FlvReader()
    trickled = [
        item for index in range(0, len(flv), 7) for item in reader.feed(flv[index : index + 7])
    ]

    assert trickled == whole
    header, *packets = whole
    assert isinstance(header, AvcSequenceHeader) and header.record[0] == 1  # avcC version 1
    assert len(packets) == 75 and all(isinstance(p, VideoPacket) for p in packets)
    video = [p for p in packets if isinstance(p, VideoPacket)]
    assert video[0].keyframe and video[0].dts_ms == 0
    assert [p.dts_ms for p in video] == sorted(p.dts_ms for p in video)
    assert sum(p.keyframe for p in video) == sum(f.keyframe for f in fixture_stream()[1])


def test_bytes_that_are_not_flv_are_refused() -> None:
    with pytest.raises(FlvError):
        FlvReader().feed(b"\x00\x00\x00\x1cftypisom" + bytes(20))


def test_with_packets_the_pictures_come_from_them_and_the_fragments_give_only_audio(
    flv: bytes,
) -> None:
    init, fragments = fixture_stream()
    header, *packets = FlvReader().feed(flv)
    sink = WebRtcSink(10)
    sink.set_init(init)
    sink.add_packet(header)
    viewer = sink.subscribe()
    sink.join(viewer)

    for packet, fragment in zip(packets, [f for f in fragments if f.video_samples], strict=True):
        sink.add_packet(packet)  # each picture a frame before the fragment that repeats it
        sink.add_fragment(fragment)

    frames = drain(viewer)
    assert len(frames) == 75 == sink.stats().frames
    assert sink.stats().video_feed == "packets"
    assert frames[0].keyframe and frames[0].timestamp == 0
    # The same pictures and clock as from the fragments, to the millisecond FLV keeps.
    from_fragments = WebRtcSink(10)
    from_fragments.set_init(init)
    reference = from_fragments.subscribe()
    from_fragments.join(reference)
    for fragment in fragments:
        from_fragments.add_fragment(fragment)
    expected = drain(reference)
    assert [f.data for f in frames] == [f.data for f in expected]
    ms = RTP_CLOCK_HZ // 1000
    assert all(abs(a.timestamp - b.timestamp) < ms for a, b in zip(frames, expected, strict=True))


def test_a_viewer_joining_a_packet_fed_stream_starts_at_its_latest_keyframe(flv: bytes) -> None:
    init, _ = fixture_stream()
    header, *items = FlvReader().feed(flv)
    packets = [p for p in items if isinstance(p, VideoPacket)]
    keyframes = [i for i, p in enumerate(packets) if p.keyframe]
    sink = WebRtcSink(10)
    sink.add_packet(header)  # the packets' header may come before the MP4's init segment
    sink.set_init(init)
    for packet in packets[: keyframes[1] + 4]:
        sink.add_packet(packet)
    assert sink.ready and sink.stats().bytes_held > 0

    viewer = sink.subscribe()
    sink.join(viewer)
    joined = drain(viewer)
    assert len(joined) == 4 and joined[0].keyframe

    sink.discontinuity()  # the next FFmpeg run: fragments again until its packets say otherwise
    assert sink.stats().bytes_held == 0 and sink.stats().video_feed == "fragments"


def test_ffmpeg_writes_the_packets_only_for_copied_h264() -> None:
    spec = CameraSpec("door", "rtsp://cam.example/stream")
    h264, hevc = MediaInfo(video_codec="h264"), MediaInfo(video_codec="hevc")
    argv = stream_command("ffmpeg", spec, Settings(), h264, packet_fd=7).argv
    mp4 = argv.index("pipe:1")
    assert argv[mp4 + 1 :] == packet_output(7) and argv[-3:] == ["-f", "flv", "pipe:7"]
    assert stream_command("ffmpeg", spec, Settings(), h264).argv[-1] == "pipe:1"
    assert sends_packets(spec, h264) and not sends_packets(spec, hevc)
    reencoded = CameraSpec("door", "rtsp://cam.example/stream", Overrides(videoCodec="h264"))
    assert not sends_packets(reencoded, h264)
