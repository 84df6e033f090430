"""WebRtcSink, viewer queues and their RTP clock, fed real FFmpeg fragments (audio+video)."""

from __future__ import annotations

import pytest

from camgate.errors import CapacityReached, InvalidInput
from camgate.fmp4 import Fragment, InitSegment, TrackInfo
from camgate.outputs.webrtc.access_unit import AvcConfig, access_unit
from camgate.outputs.webrtc.sink import WebRtcSink, unsupported_video
from camgate.outputs.webrtc.viewer import (
    CATCH_UP_TICKS,
    CatchUpPacer,
    Delivery,
    EncodedFrame,
    Retimer,
    ViewerEnd,
    ViewerQueue,
)
from tests.support.captured import drain, fixture_stream

FRAME_TICKS = 3600  # 25 fps at 90 kHz




def new_sink(max_viewers: int = 10) -> tuple[WebRtcSink, list[Fragment]]:
    sink = WebRtcSink(max_viewers)
    init, fragments = fixture_stream()
    sink.set_init(init)
    return sink, fragments


def test_the_sink_is_ready_at_the_first_keyframe_and_a_viewer_gets_every_picture() -> None:
    sink, fragments = new_sink()
    viewer = sink.subscribe()
    sink.join(viewer)
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
    sink.join(viewer)
    joined = drain(viewer)
    sink.add_fragment(video[keyframes[1] + 10])
    live = drain(viewer)

    assert len(joined) == 10 and joined[0].keyframe
    # The queued pictures are a tick apart: decoded at once, the newest shown live.
    assert [f.timestamp for f in joined] == [i * CATCH_UP_TICKS for i in range(10)]
    assert [f.catch_up for f in joined] == [False] + [True] * 9
    assert len(live) == 1
    assert 0 < live[0].timestamp - joined[-1].timestamp <= 2 * FRAME_TICKS


def test_a_viewer_queues_nothing_until_connected_then_starts_at_the_latest_keyframe() -> None:
    sink, fragments = new_sink()
    video = [f for f in fragments if f.video_samples]
    keyframes = [i for i, f in enumerate(video) if f.keyframe]
    viewer = sink.subscribe()  # answered; ICE and DTLS still under way
    for fragment in video[: keyframes[1] + 5]:
        sink.add_fragment(fragment)
    assert viewer.state is Delivery.PENDING and viewer.frames_queued == 0
    assert viewer.frames_dropped == 0

    sink.join(viewer)  # the track's first recv()
    joined = drain(viewer)

    assert len(joined) == 5 and joined[0].keyframe  # the second GOP, not the first
    assert sink.stats().viewers == 1


def test_the_catch_up_burst_is_paced_after_its_first_bytes() -> None:
    pacer = CatchUpPacer(bits_per_s=8_000_000, burst_bytes=100_000)  # 1 MB/s
    assert pacer.delay_s(0.0, 60_000) == 0.0
    assert pacer.delay_s(0.0, 40_000) == 0.0
    assert pacer.delay_s(0.0, 10_000) == 0.01  # 10 kB over the burst: 10 ms at 1 MB/s
    assert pacer.delay_s(0.01, 10_000) == 0.01  # the bucket refilled by what was waited for
    assert pacer.delay_s(1.0, 100_000) == 0.0  # idle for a while: a full burst again


def test_a_viewer_that_falls_behind_skips_to_the_next_keyframe() -> None:
    viewer = ViewerQueue(max_frames=3)
    viewer.start([])

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


def test_nothing_is_converted_without_a_joined_viewer_and_a_joiner_still_starts_at_a_keyframe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    converted: list[bytes] = []

    def counted(sample: bytes, config: AvcConfig) -> tuple[bytes, bool]:
        converted.append(sample)
        return access_unit(sample, config)

    monkeypatch.setattr("camgate.outputs.webrtc.sink.access_unit", counted)
    sink, fragments = new_sink()
    video = [f for f in fragments if f.video_samples]
    keyframes = [i for i, f in enumerate(video) if f.keyframe]
    pending = sink.subscribe()  # answered, not connected: no reason to convert yet
    for fragment in video[: keyframes[1] + 7]:
        sink.add_fragment(fragment)
    assert converted == [] and sink.ready
    assert sink.stats().frames == keyframes[1] + 7
    assert sink.stats().bytes_held == sum(
        len(f.data) for f in video[keyframes[1] : keyframes[1] + 7]
    )

    sink.join(pending)
    joined = drain(pending)
    assert len(converted) == 7  # only the latest group, once
    assert len(joined) == 7 and joined[0].keyframe and not any(f.keyframe for f in joined[1:])

    sink.add_fragment(video[keyframes[1] + 7])  # live: converted as it comes
    assert len(converted) == 8 and len(drain(pending)) == 1
    late = sink.subscribe()
    sink.join(late)
    assert len(converted) == 8  # the group is converted already
    assert len(drain(late)) == 8

    sink.unsubscribe(pending), sink.unsubscribe(late)
    sink.add_fragment(video[keyframes[1] + 8])
    assert len(converted) == 8  # nobody joined: kept as it came
    again = sink.subscribe()
    sink.join(again)
    rejoined = drain(again)
    assert len(converted) == 9 and len(rejoined) == 9 and rejoined[0].keyframe
