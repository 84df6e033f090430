"""From fMP4 fragments to the access units WebRTC sends, on real FFmpeg output (data/)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from camgate.fmp4 import Fmp4Error, Fmp4Reader, Fragment, InitSegment
from camgate.outputs.webrtc.access_unit import (
    START_CODE,
    access_unit,
    avc_config,
    nal_type,
    nal_units,
    parse_avcc,
)
from camgate.outputs.webrtc.samples import Sample, track_samples

DATA = Path(__file__).parent / "data"
FIXTURES = ["av_every_frame_ff5.mp4", "video_every_frame_ff9.mp4", "av_frag180_ff9.mp4"]


def stream(name: str) -> tuple[InitSegment, list[Fragment]]:
    init, *items = Fmp4Reader().feed((DATA / name).read_bytes())
    assert isinstance(init, InitSegment)
    return init, [item for item in items if isinstance(item, Fragment)]


def samples_of(name: str) -> tuple[InitSegment, list[Sample]]:
    init, fragments = stream(name)
    track = next(t for t in init.tracks if t.kind == "video")
    return init, [s for f in fragments for s in track_samples(f.data, track)]


@pytest.mark.parametrize("name", FIXTURES)
def test_every_video_sample_is_cut_out_with_its_keyframe_flag(name: str) -> None:
    init, fragments = stream(name)
    _, samples = samples_of(name)

    assert len(samples) == sum(f.video_samples for f in fragments) == 75
    assert sum(s.keyframe for s in samples) == sum(f.keyframe for f in fragments)
    assert samples[0].keyframe
    times = [s.decode_time for s in samples]
    assert times == sorted(times) and len(set(times)) == len(times)


@pytest.mark.parametrize("name", FIXTURES)
def test_the_init_segment_gives_the_parameter_sets(name: str) -> None:
    config = avc_config(stream(name)[0])

    assert config is not None and config.length_size == 4
    assert [nal_type(nal) for nal in config.sps] == [7]
    assert [nal_type(nal) for nal in config.pps] == [8]
    assert config.parameter_sets.startswith(START_CODE + config.sps[0])


@pytest.mark.parametrize("name", FIXTURES)
def test_access_units_decode_from_any_keyframe_on(name: str) -> None:
    init, samples = samples_of(name)
    config = avc_config(init)
    assert config is not None
    units = [access_unit(sample.data, config) for sample in samples]
    assert [keyframe for _, keyframe in units] == [s.keyframe for s in samples]
    keyframes = [i for i, (_, keyframe) in enumerate(units) if keyframe]

    for start in keyframes:  # a viewer joining at any keyframe needs nothing before it
        data, _ = units[start]
        assert data.startswith(config.parameter_sets)
        decoder = av.CodecContext.create("h264", "r")
        pictures = [f for d, _ in units[start:] for f in decoder.decode(av.Packet(d))]
        pictures += decoder.decode(None)
        assert len(pictures) == len(units) - start
        assert {(p.width, p.height) for p in pictures} == {(160, 90)}


def test_only_keyframes_get_parameter_sets_and_nal_units_keep_their_bytes() -> None:
    init, samples = samples_of("video_every_frame_ff9.mp4")
    config = avc_config(init)
    assert config is not None
    delta = next(s for s in samples if not s.keyframe)

    data, keyframe = access_unit(delta.data, config)

    assert not keyframe
    nals = list(nal_units(delta.data, config.length_size))
    assert data == b"".join(START_CODE + nal for nal in nals if nal_type(nal) != 9)
    assert config.parameter_sets not in data


def test_parameter_sets_already_in_band_are_not_repeated() -> None:
    init, samples = samples_of("video_every_frame_ff9.mp4")
    config = avc_config(init)
    assert config is not None
    key = samples[0].data
    length = config.length_size
    in_band = b"".join(len(n).to_bytes(length, "big") + n for n in (*config.sps, *config.pps))

    data, keyframe = access_unit(in_band + key, config)

    assert keyframe and data.count(START_CODE + config.sps[0]) == 1


def test_broken_avcc_is_an_fmp4_error() -> None:
    with pytest.raises(Fmp4Error):
        list(nal_units(b"\x00\x00\x00\x09abc", 4))
    with pytest.raises(Fmp4Error):
        parse_avcc(b"\x00\x42")


def test_a_truncated_fragment_is_an_fmp4_error() -> None:
    init, fragments = stream("video_every_frame_ff9.mp4")
    track = next(t for t in init.tracks if t.kind == "video")
    with pytest.raises(Fmp4Error):
        track_samples(fragments[0].data[:-10], track)
