"""The camera's AAC as Opus for WebRTC: configuration read from a real FFmpeg init segment, one
transcoder per camera feeding every listening viewer, nothing done while nobody listens."""

from __future__ import annotations

import array
from pathlib import Path

import av
from av.audio.resampler import AudioResampler

from camgate.fmp4 import Fmp4Reader, InitSegment
from camgate.outputs.webrtc.audio import (
    OPUS_FRAME_SAMPLES,
    AudioQueue,
    OpusPacket,
    OpusTranscoder,
    aac_config,
)
from camgate.outputs.webrtc.samples import track_samples
from camgate.outputs.webrtc.sink import WebRtcSink
from tests.support.captured import fixture_stream

DATA = Path(__file__).parent / "data"
FIXTURE_AUDIO_S = 3.0  # av_every_frame_ff5.mp4: FFmpeg's AAC, 48 kHz, beside 75 pictures



def drain(queue: AudioQueue) -> list[OpusPacket]:
    packets = []
    while (packet := queue.take()) is not None:
        packets.append(packet)
    return packets


def decoded_samples(packets: list[OpusPacket]) -> list[int]:
    """What a receiver hears: the packets through libopus, as 16-bit samples."""
    decoder = av.CodecContext.create("libopus", "r")
    mono = AudioResampler(format="s16", layout="mono", rate=48_000)
    samples = array.array("h")
    for packet in packets:
        for frame in decoder.decode(av.Packet(packet.data)):
            for pcm in mono.resample(frame):
                samples.frombytes(bytes(pcm.planes[0])[: pcm.samples * 2])
    return list(samples)


def test_the_aac_configuration_comes_from_the_init_segment() -> None:
    init, _ = fixture_stream()
    found = aac_config(init)
    assert found is not None
    track, config = found
    assert track.kind == "audio" and track.codec == "mp4a.40.2"
    assert config[0] >> 3 == 2  # AudioSpecificConfig: object type 2, AAC LC


def test_a_stream_without_audio_has_no_aac_configuration() -> None:
    init, *_ = Fmp4Reader().feed((DATA / "video_every_frame_ff9.mp4").read_bytes())
    assert isinstance(init, InitSegment)
    assert aac_config(init) is None


def test_the_transcoder_turns_the_cameras_aac_into_20_ms_opus_packets_that_decode() -> None:
    init, fragments = fixture_stream()
    found = aac_config(init)
    assert found is not None
    track, config = found
    transcoder = OpusTranscoder(config)

    packets = [p for f in fragments for p in transcoder.transcode(track_samples(f.data, track))]

    expected = FIXTURE_AUDIO_S * 48_000 / OPUS_FRAME_SAMPLES
    assert abs(len(packets) - expected) <= 3  # AAC priming and the last partial packet
    assert [p.pts for p in packets] == [i * OPUS_FRAME_SAMPLES for i in range(len(packets))]
    heard = decoded_samples(packets)
    assert len(heard) >= (len(packets) - 1) * OPUS_FRAME_SAMPLES
    assert max(heard) > 1000 and min(heard) < -1000  # the fixture's tone, not silence
    assert transcoder.failures == 0


def test_one_transcoding_feeds_every_listener_and_none_runs_without_one() -> None:
    init, fragments = fixture_stream()
    sink = WebRtcSink(10)
    sink.set_init(init)
    first, second = sink.subscribe_audio(), sink.subscribe_audio()
    assert first is not None and second is not None and sink.has_audio
    half = len(fragments) // 2
    for fragment in fragments[:half]:  # answered, not connected: nothing is transcoded
        sink.add_fragment(fragment)
    assert sink.stats().audio_packets == 0

    sink.join_audio(first)
    sink.join_audio(second)
    for fragment in fragments[half : half + 20]:  # within a queue's second
        sink.add_fragment(fragment)

    heard_first, heard_second = drain(first), drain(second)
    assert heard_first and heard_first == heard_second  # the same packets, made once
    assert sink.stats().audio_packets == len(heard_first)
    assert sink.stats().audio_viewers == 2
    sink.unsubscribe_audio(first)
    sink.unsubscribe_audio(second)
    sink.add_fragment(fragments[-1])
    assert sink.stats().audio_packets == len(heard_first) and sink.stats().audio_viewers == 0


def test_a_camera_without_audio_gives_viewers_video_only() -> None:
    init, *_ = Fmp4Reader().feed((DATA / "video_every_frame_ff9.mp4").read_bytes())
    assert isinstance(init, InitSegment)
    sink = WebRtcSink(10)
    sink.set_init(init)
    assert sink.subscribe_audio() is None and not sink.has_audio
