"""WebRtcSink, viewer queues and their RTP clock, fed real FFmpeg fragments (audio+video)."""

from __future__ import annotations

from pathlib import Path

import pytest

from camgate.errors import CapacityReached, InvalidInput
from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment, TrackInfo
from camgate.outputs.webrtc.ice import announce_addresses, offered_video_codecs
from camgate.outputs.webrtc.sink import WebRtcSink, unsupported_video
from camgate.outputs.webrtc.viewer import (
    CATCH_UP_TICKS,
    Delivery,
    EncodedFrame,
    Retimer,
    TimedFrame,
    ViewerEnd,
    ViewerQueue,
)

DATA = Path(__file__).parent / "data"
FRAME_TICKS = 3600  # 25 fps at 90 kHz


def fixture_stream() -> tuple[InitSegment, list[Fragment]]:
    init, *fragments = Fmp4Reader().feed((DATA / "av_every_frame_ff5.mp4").read_bytes())
    assert isinstance(init, InitSegment)
    return init, [f for f in fragments if isinstance(f, Fragment)]


def drain(viewer: ViewerQueue) -> list[TimedFrame]:
    frames = []
    while (frame := viewer.take()) is not None:
        frames.append(frame)
    return frames


def new_sink(max_viewers: int = 10) -> tuple[WebRtcSink, list[Fragment]]:
    sink = WebRtcSink(max_viewers)
    init, fragments = fixture_stream()
    sink.set_init(init)
    return sink, fragments


def test_the_sink_is_ready_at_the_first_keyframe_and_a_viewer_gets_every_picture() -> None:
    sink, fragments = new_sink()
    viewer = sink.subscribe()
    assert not sink.ready

    for fragment in fragments:
        sink.add_fragment(fragment)

    frames = drain(viewer)
    assert sink.ready
    assert len(frames) == 75 == sink.stats().frames
    assert frames[0].keyframe and frames[0].timestamp == 0
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)
    assert sink.stats().viewers == 1


def test_a_late_viewer_starts_at_the_latest_keyframe_and_catches_up_at_once() -> None:
    sink, fragments = new_sink()
    video = [f for f in fragments if f.video_samples]
    keyframes = [i for i, f in enumerate(video) if f.keyframe]
    for fragment in video[: keyframes[1] + 10]:
        sink.add_fragment(fragment)

    viewer = sink.subscribe()
    joined = drain(viewer)
    sink.add_fragment(video[keyframes[1] + 10])
    live = drain(viewer)

    assert len(joined) == 10 and joined[0].keyframe
    # The queued pictures are a tick apart: decoded at once, the newest shown live.
    assert [f.timestamp for f in joined] == [i * CATCH_UP_TICKS for i in range(10)]
    assert len(live) == 1
    assert 0 < live[0].timestamp - joined[-1].timestamp <= 2 * FRAME_TICKS


def test_a_viewer_that_falls_behind_skips_to_the_next_keyframe() -> None:
    viewer = ViewerQueue(max_frames=3)

    viewer.offer(EncodedFrame(b"k", 0, True))
    for index in range(1, 5):
        viewer.offer(EncodedFrame(b"d", index * FRAME_TICKS, False))
    assert viewer.state is Delivery.WAITING and viewer.frames_queued == 0
    viewer.offer(EncodedFrame(b"k2", 5 * FRAME_TICKS, True))
    assert [f.data for f in drain(viewer)] == [b"k2"]
    assert viewer.frames_dropped == 5  # the three queued and the two after them


def test_a_new_ffmpeg_run_keeps_each_viewers_clock_rising() -> None:
    retimer = Retimer()
    first = [retimer.timestamp(pts) for pts in (0, 3600, 7200)]
    retimer.restart()
    second = [retimer.timestamp(pts) for pts in (0, 3600)]
    assert first == [0, 3600, 7200]
    assert second == [7200 + FRAME_TICKS, 7200 + 2 * FRAME_TICKS]


def test_closing_the_stream_ends_every_viewer() -> None:
    sink, _ = new_sink()
    viewer = sink.subscribe()
    sink.close()
    assert viewer.end is ViewerEnd.STREAM_STOPPED and sink.consumers == 0
    assert sink.subscribe().end is ViewerEnd.STREAM_STOPPED


def test_the_per_camera_limit_refuses_one_viewer_more() -> None:
    sink, _ = new_sink(max_viewers=2)
    sink.subscribe(), sink.subscribe()
    with pytest.raises(CapacityReached):
        sink.subscribe()


def test_an_h265_camera_is_ready_but_refused_with_the_override_to_use() -> None:
    init, _ = fixture_stream()
    video = next(t for t in init.tracks if t.kind == "video")
    hevc = TrackInfo(video.track_id, "video", video.timescale, "hvc1.1.6.L93.B0")
    init = InitSegment(init.data, (hevc,), video.track_id, 640, 360)
    sink = WebRtcSink(10)
    sink.set_init(init)

    assert sink.ready
    assert "videoCodec: h264" in (unsupported_video(init) or "")
    with pytest.raises(InvalidInput, match="H.265"):
        sink.subscribe()


OFFER = "\r\n".join(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 102",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:102 H264/90000",
        "",
    ]
)


def test_offered_video_codecs_are_read_from_the_video_section_only() -> None:
    assert offered_video_codecs(OFFER) == {"VP8", "H264"}


def test_an_announced_address_repeats_each_ipv4_host_candidate() -> None:
    answer = "a=candidate:abc 1 udp 2130706431 192.0.2.2 50000 typ host\r\n"
    answer += "a=candidate:def 1 udp 2130706431 fe80::1 50001 typ host\r\n"

    lines = announce_addresses(answer, ["203.0.113.7"]).splitlines()

    assert lines[1] == "a=candidate:abcx0 1 udp 2130706175 203.0.113.7 50000 typ host"
    assert len(lines) == 3
