"""FFmpeg argv building (copy vs encode, audio), input description parsing, failure reasons."""

from __future__ import annotations

import pytest

from camgate.camera import CameraSpec, Overrides
from camgate.config import Settings
from camgate.errors import InvalidInput
from camgate.ffmpeg import (
    FailureReason,
    MediaInfo,
    classify_probe_failure,
    classify_stderr,
    find_ffmpeg,
    parse_media_info,
    probe_argv,
    stream_argv,
)

SETTINGS = Settings()
H264_AAC = MediaInfo("h264", 1280, 720, 25.0, "aac", 48000, "mono")
H264_ALAW = MediaInfo("h264", 1280, 720, 25.0, "pcm_alaw", 8000, "mono")
H264_ONLY = MediaInfo("h264", 1280, 720, 25.0)


def argv(info: MediaInfo, **overrides: object) -> list[str]:
    spec = CameraSpec("cam", "rtsp://user:pw@cam/live", Overrides(**overrides))
    return stream_argv("ffmpeg", spec, SETTINGS, info)


def value_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_default_copies_video_and_aac_audio_over_tcp() -> None:
    args = argv(H264_AAC)
    assert value_after(args, "-c:v") == "copy"
    assert value_after(args, "-c:a") == "copy"
    assert value_after(args, "-rtsp_transport") == "tcp"
    assert value_after(args, "-timeout") == str(int(SETTINGS.rtsp_timeout_s * 1e6))
    assert "libx264" not in args
    assert args[-1] == "pipe:1" and value_after(args, "-f") == "mp4"
    assert "empty_moov" in value_after(args, "-movflags")
    assert value_after(args, "-frag_duration") == "1"


def test_g711_audio_is_converted_to_aac() -> None:
    args = argv(H264_ALAW)
    assert value_after(args, "-c:a") == "aac"
    assert value_after(args, "-c:v") == "copy"


def test_missing_audio_is_dropped() -> None:
    args = argv(H264_ONLY)
    assert "-an" in args and "0:a:0" not in args


def test_overrides_reencode_with_x264_ultrafast_zerolatency() -> None:
    args = argv(H264_AAC, videoBitrate="1500k", resolution="640x360")
    assert value_after(args, "-c:v") == "libx264"
    assert value_after(args, "-preset") == "ultrafast"
    assert value_after(args, "-tune") == "zerolatency"
    assert value_after(args, "-b:v") == "1500k"
    assert value_after(args, "-s") == "640x360"


def test_audio_none_override_drops_audio() -> None:
    assert "-an" in argv(H264_AAC, audio="none")


def test_url_is_one_argv_element_and_never_shell_quoted() -> None:
    args = argv(H264_AAC)
    assert value_after(args, "-i") == "rtsp://user:pw@cam/live"
    assert args.count("rtsp://user:pw@cam/live") == 1


def test_probe_uses_small_probing() -> None:
    args = probe_argv("ffmpeg", CameraSpec("cam", "rtsp://cam/x"), SETTINGS)
    assert value_after(args, "-probesize") == "32"
    assert value_after(args, "-i") == "rtsp://cam/x"


DUMP = """
Input #0, rtsp, from 'rtsp://***@127.0.0.1:8554/cam':
  Duration: N/A, start: 0.000000, bitrate: N/A
  Stream #0:0: Video: h264 (Constrained Baseline), yuv420p(progressive), 640x360, 25 fps, 25 tbr
  Stream #0:1: Audio: pcm_alaw, 8000 Hz, mono, s16, 64 kb/s
"""


def test_parse_media_info_reads_codecs_size_and_rate() -> None:
    info = parse_media_info(DUMP)
    assert info == MediaInfo("h264", 640, 360, 25.0, "pcm_alaw", 8000, "mono")
    assert parse_media_info("nothing here") == MediaInfo()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[rtsp @ 0x5] method DESCRIBE failed: 401 Unauthorized", FailureReason.AUTH_FAILED),
        ("[rtsp @ 0x5] method DESCRIBE failed: 404 Not Found", FailureReason.NOT_FOUND),
        (
            "[tcp @ 0x5] Connection to tcp://127.0.0.1:9 failed: Connection refused",
            FailureReason.UNREACHABLE,
        ),
        (
            "[tcp @ 0x5] Connection to tcp://10.9.9.9:554 failed: Connection timed out",
            FailureReason.TIMEOUT,
        ),
        ("Could not find tag for codec pcm_mulaw in stream #1", FailureReason.UNSUPPORTED_CODEC),
        ("something odd", FailureReason.UNKNOWN),
    ],
)
def test_classify_stderr(line: str, reason: FailureReason) -> None:
    failure = classify_stderr(["Input #0 ...", line], 1)
    assert failure.reason is reason
    assert failure.detail


def test_find_ffmpeg_rejects_a_missing_configured_path() -> None:
    with pytest.raises(InvalidInput, match="FFMPEG_PATH"):
        find_ffmpeg("/nonexistent/ffmpeg")


def test_find_ffmpeg_falls_back_to_a_real_binary() -> None:
    found = find_ffmpeg(None)
    assert "ffmpeg" in found.rsplit("/", 1)[-1]


def test_copied_h265_is_tagged_hvc1_for_browsers() -> None:
    args = argv(MediaInfo("hevc", 1920, 1080, 25.0))
    assert value_after(args, "-c:v") == "copy"
    assert value_after(args, "-tag:v") == "hvc1"
    assert "-tag:v" not in argv(H264_ONLY)


def test_a_camera_that_never_answers_is_a_timeout() -> None:
    lines = ["rtsp://127.0.0.1:9/cam: Invalid data found when processing input"]
    assert classify_probe_failure(lines, 10.2, 10.0).reason is FailureReason.TIMEOUT
    assert classify_probe_failure(lines, 0.3, 10.0).reason is FailureReason.UNKNOWN
    refused = ["Connection to tcp://127.0.0.1:9 failed: Connection refused"]
    assert classify_probe_failure(refused, 12.0, 10.0).reason is FailureReason.UNREACHABLE


def test_without_ffmpeg_on_path_the_wheel_binary_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    found = find_ffmpeg(None)
    assert "imageio_ffmpeg" in found
