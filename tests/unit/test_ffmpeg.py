"""FFmpeg argv and input script building (copy vs encode, audio, no URL in argv), input
description parsing, failure reasons, stderr line splitting."""

from __future__ import annotations

import pytest

from camgate.camera import CameraSpec, Overrides
from camgate.config import Settings
from camgate.errors import InvalidInput
from camgate.ffmpeg import (
    FailureReason,
    InputDump,
    MediaInfo,
    StderrLines,
    classify_probe_failure,
    classify_stderr,
    ffconcat_quote,
    find_ffmpeg,
    input_script,
    parse_media_info,
    probe_command,
    stream_command,
)
from camgate.pull import FIRST_PLAN

SETTINGS = Settings()
H264_AAC = MediaInfo("h264", 1280, 720, 25.0, "aac", 48000, "mono")
H264_ALAW = MediaInfo("h264", 1280, 720, 25.0, "pcm_alaw", 8000, "mono")
H264_ONLY = MediaInfo("h264", 1280, 720, 25.0)


URL = "rtsp://user:pw@cam/live"


def argv(info: MediaInfo, **overrides: object) -> list[str]:
    spec = CameraSpec("cam", URL, Overrides(**overrides))
    return stream_command("ffmpeg", spec, SETTINGS, info).argv


def script_options(script: str) -> dict[str, str]:
    pairs = (line.split(" ", 2)[1:] for line in script.splitlines() if line.startswith("option "))
    return {name: value.strip("'") for name, value in pairs}


def value_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_default_copies_video_and_aac_audio() -> None:
    args = argv(H264_AAC)
    assert value_after(args, "-c:v") == "copy"
    assert value_after(args, "-c:a") == "copy"
    assert "libx264" not in args
    assert args[-1] == "pipe:1" and args[args.index("mp4") - 1] == "-f"
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


def test_the_url_is_never_in_argv_but_in_the_script_on_stdin() -> None:
    spec = CameraSpec("door", URL)
    for command in (
        stream_command("ffmpeg", spec, SETTINGS, H264_AAC),
        probe_command("ffmpeg", spec, SETTINGS),
    ):
        assert not any("user" in arg or "pw@" in arg or "cam/live" in arg for arg in command.argv)
        assert value_after(command.argv, "-f") == "concat"
        assert value_after(command.argv, "-safe") == "0"
        assert value_after(command.argv, "-protocol_whitelist") == "pipe,tcp,tls"
        assert value_after(command.argv, "-i") == "pipe:0"
        assert command.script.splitlines()[:2] == ["ffconcat version 1.0", f"file '{URL}'"]
        assert URL not in repr(command)


def test_the_script_carries_the_camera_input_options() -> None:
    options = script_options(stream_command("f", CameraSpec("c", URL), SETTINGS, H264_AAC).script)
    assert options["rtsp_transport"] == "tcp"
    assert options["timeout"] == str(int(SETTINGS.rtsp_timeout_s * 1e6))


def test_stream_argv_names_the_camera_for_ps() -> None:
    args = stream_command("ffmpeg", CameraSpec("door", URL), SETTINGS, H264_AAC).argv
    assert value_after(args, "-metadata") == "camgate_camera=door"
    assert args.index("-metadata") < args.index("pipe:1")


def test_probe_uses_small_probing_and_the_concat_input_does_not_probe_again() -> None:
    command = probe_command("ffmpeg", CameraSpec("cam", "rtsp://cam/x"), SETTINGS)
    options = script_options(command.script)
    assert (options["probesize"], options["analyzeduration"], options["fflags"]) == (
        "32",
        "0",
        "nobuffer",
    )
    assert "-nofind_stream_info" in command.argv and "-probesize" not in command.argv


def test_default_probing_leaves_the_probing_options_out() -> None:
    spec = CameraSpec("cam", "rtsp://cam/x")
    command = stream_command("ffmpeg", spec, SETTINGS, H264_AAC, fast_probe=False)
    assert "probesize" not in script_options(command.script)
    assert "probesize" not in input_script(spec, SETTINGS, fast_probe=False)
    assert "probesize" in input_script(spec, SETTINGS, fast_probe=True)


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("rtsp://cam/live", "'rtsp://cam/live'"),
        ("rtsp://o'brien:pw@cam/x", "'rtsp://o'\\''brien:pw@cam/x'"),
        ("rtsp://u:a\\b#c@cam/x", "'rtsp://u:a\\b#c@cam/x'"),
    ],
    ids=["plain", "quote", "backslash-and-hash"],
)
def test_ffconcat_quote_keeps_every_character_literal(value: str, token: str) -> None:
    assert ffconcat_quote(value) == token


@pytest.mark.parametrize("value", ["rtsp://cam/a\nfile '/etc/passwd'", "a\rb", "a\0b"])
def test_ffconcat_quote_refuses_line_breaks(value: str) -> None:
    with pytest.raises(InvalidInput):
        ffconcat_quote(value)


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


def test_stderr_lines_are_split_across_chunks_and_at_carriage_returns() -> None:
    lines = StderrLines()
    assert lines.feed(b"[rtsp @ 0x1] method DESCRIBE fa") == []
    assert lines.feed(b"iled: 401 Unauthorized\nframe=1\rframe=2\r\n\npartial") == [
        "[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized",
        "frame=1",
        "frame=2",
    ]
    assert lines.close() == ["partial"]
    assert lines.close() == []


def test_an_absurdly_long_stderr_line_is_cut_without_a_half_url() -> None:
    lines = StderrLines(max_bytes=64)
    head = b"[tcp @ 0x1] Connection to rtsp://admin:"
    found = lines.feed(head + b"x" * 100_000)
    found += lines.feed(b"y" * 100_000 + b"@cam/x failed\nnext line\n")
    assert found == ["[tcp @ 0x1] Connection to [...]", "next line"]


def test_a_long_line_without_spaces_becomes_only_the_mark() -> None:
    assert StderrLines(max_bytes=8).feed(b"A" * 70_000 + b"\n") == ["[...]"]


def test_a_port_in_the_url_is_not_an_http_status() -> None:
    line = "[concat @ 0x5600] Impossible to open 'rtsp://127.0.0.1:40171/cam'"
    assert classify_stderr([line], 1).reason is FailureReason.UNKNOWN
    lines = ["[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized", line]
    assert classify_stderr(lines, 1).reason is FailureReason.AUTH_FAILED
    assert classify_stderr(["Server returned 404 Not Found"], 1).reason is FailureReason.NOT_FOUND


STREAMING_STDERR = [
    "[rtsp @ 0x55] Stream #0: not enough frames to estimate rate; consider increasing probesize",
    "Input #0, concat, from 'pipe:0':",
    "  Duration: N/A, bitrate: N/A",
    "  Stream #0:0: Video: h264 (Constrained Baseline), yuv420p(tv, smpte170m, progressive), "
    "640x360 [SAR 1:1 DAR 16:9], 25 fps, 50 tbr, 90k tbn",
    "  Stream #0:1: Audio: pcm_alaw, 8000 Hz, mono, s16, 64 kb/s",
    "Stream mapping:",
    "  Stream #0:0 -> #0:0 (copy)",
    "Output #0, mp4, to 'pipe:1':",
    "  Stream #0:0: Video: h264 (Constrained Baseline) (avc1 / 0x31637661), 1920x1080",
]


def test_the_input_description_of_a_streaming_run_gives_the_facts_once() -> None:
    dump = InputDump()
    results = [dump.feed(line) for line in STREAMING_STDERR]

    found = [facts for facts in results if facts is not None]
    assert len(found) == 1 and results.index(found[0]) == STREAMING_STDERR.index("Stream mapping:")
    facts = found[0]
    assert (facts.video_codec, facts.width, facts.height) == ("h264", 640, 360)  # not the output's
    assert (facts.audio_codec, facts.audio_rate_hz) == ("pcm_alaw", 8000)
    assert dump.facts == facts and not dump.reading


def test_a_run_that_never_describes_its_input_gives_no_facts() -> None:
    dump = InputDump()
    lines = ["[tcp @ 0x1] Connection to tcp://10.0.0.9:554 failed: Connection refused"]
    assert [dump.feed(line) for line in lines] == [None] and dump.facts is None


def test_a_plan_probes_the_stream_once_the_sdp_lacked_the_picture_size() -> None:
    first = FIRST_PLAN
    without_size = first.after(MediaInfo(video_codec="h264", audio_codec="pcm_alaw"))
    probed = without_size.after(MediaInfo(video_codec="h264", width=640, height=360))

    assert first.fast_probe and first.info.audio_codec is None
    assert not without_size.fast_probe
    assert not probed.fast_probe  # its size came from probing, not from the SDP
    assert first.after(MediaInfo(video_codec="hevc", width=640)).fast_probe
