"""What a stream's status tells a user about browsers: which outputs play where."""

from __future__ import annotations

from camgate.status import browser_playback


def test_h264_plays_everywhere_and_needs_no_note() -> None:
    assert browser_playback("h264", reencoded=False).model_dump() == {
        "playable": "all",
        "note": None,
    }


def test_h265_copied_plays_only_in_some_browsers_and_names_the_override() -> None:
    playback = browser_playback("hevc", reencoded=False)
    assert playback.playable == "some"
    assert playback.note is not None and '"videoCodec": "h264"' in playback.note


def test_a_converted_camera_plays_everywhere_whatever_it_sends() -> None:
    assert browser_playback("hevc", reencoded=True).playable == "all"
    assert browser_playback("mjpeg", reencoded=True).playable == "all"


def test_other_codecs_do_not_play_and_the_codec_is_unknown_before_the_probe() -> None:
    assert browser_playback("mjpeg", reencoded=False).playable == "none"
    assert browser_playback(None, reencoded=False).playable is None
