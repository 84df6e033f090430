"""FFmpeg as camgate uses it: `command` finds the binary and builds argv and the input script;
`stderr` reads what FFmpeg says (the camera's codecs, why it failed). Neither starts a process."""

from camgate.ffmpeg.command import (
    BROWSER_AUDIO,
    CAMERA_MARKER,
    FfmpegCommand,
    ffconcat_quote,
    find_ffmpeg,
    input_script,
    probe_command,
    stream_command,
)
from camgate.ffmpeg.stderr import (
    Failure,
    FailureReason,
    InputDump,
    MediaInfo,
    StderrLines,
    classify_probe_failure,
    classify_stderr,
    parse_media_info,
)

__all__ = [
    "BROWSER_AUDIO",
    "CAMERA_MARKER",
    "Failure",
    "FailureReason",
    "FfmpegCommand",
    "InputDump",
    "MediaInfo",
    "StderrLines",
    "classify_probe_failure",
    "classify_stderr",
    "ffconcat_quote",
    "find_ffmpeg",
    "input_script",
    "parse_media_info",
    "probe_command",
    "stream_command",
]
