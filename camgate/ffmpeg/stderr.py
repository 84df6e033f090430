"""Reading what FFmpeg writes to stderr: the camera's codecs from its input dump, why a run
failed, and stderr split into bounded lines.

Pure functions and small classes with no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class MediaInfo:
    """Codec facts of a camera, read from FFmpeg's description of its input."""

    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio_codec: str | None = None
    audio_rate_hz: int | None = None
    audio_channels: str | None = None
    codecs: str | None = None  # RFC 6381 codecs of camgate's output, once known
    output_size: str | None = None  # picture size viewers get (differs when re-encoding)

    def as_dict(self) -> dict[str, object]:
        video: dict[str, object] = {"codec": self.video_codec, "width": self.width}
        video["height"] = self.height
        video["fps"] = self.fps
        audio = {"codec": self.audio_codec, "sampleRate": self.audio_rate_hz}
        return {
            "output": self.codecs,
            "outputSize": self.output_size,
            "video": video if self.video_codec else None,
            "audio": audio if self.audio_codec else None,
        }


_VIDEO_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+)(.*)")
_AUDIO_LINE = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+)(.*)")
_SIZE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_FPS = re.compile(r"([\d.]+) (?:fps|tbr)\b")
_RATE = re.compile(r"(\d+) Hz(?:, (\w+))?")


def parse_media_info(stderr_text: str) -> MediaInfo:
    """Codec facts from the first video and audio `Stream #` lines of FFmpeg's input dump."""
    facts: dict[str, object] = {}
    for line in stderr_text.splitlines():
        video = _VIDEO_LINE.search(line)
        if video and "video_codec" not in facts:
            facts["video_codec"] = video.group(1)
            size = _SIZE.search(video.group(2))
            if size:
                facts["width"], facts["height"] = int(size.group(1)), int(size.group(2))
            fps = _FPS.search(video.group(2))
            if fps:
                facts["fps"] = float(fps.group(1))
        audio = _AUDIO_LINE.search(line)
        if audio and "audio_codec" not in facts:
            facts["audio_codec"] = audio.group(1)
            rate = _RATE.search(audio.group(2))
            if rate:
                facts["audio_rate_hz"] = int(rate.group(1))
                facts["audio_channels"] = rate.group(2)
    return MediaInfo(**facts)  # type: ignore[arg-type]


class InputDump:
    """Finds FFmpeg's description of its input among the stderr lines of a streaming run: the
    lines from `Input #0` to `Stream mapping:` (or `Output #0`). `feed` returns the camera's
    codec facts once, at the line that ends the description."""

    def __init__(self) -> None:
        self._lines: list[str] | None = None  # inside the description
        self.facts: MediaInfo | None = None

    @property
    def reading(self) -> bool:
        """Whether the last line fed was part of the description."""
        return self._lines is not None

    def feed(self, line: str) -> MediaInfo | None:
        if self.facts is not None:
            return None
        if self._lines is None:
            if line.startswith("Input #0"):
                self._lines = [line]
            return None
        if line.startswith(("Stream mapping:", "Output #0")):
            self.facts = parse_media_info("\n".join(self._lines))
            self._lines = None
            return self.facts
        self._lines.append(line)
        return None


# The camera URL holds its credentials, and every local user can read a process's argv (`ps`,
# /proc/PID/cmdline). So FFmpeg gets `-i pipe:0` and reads the URL from an ffconcat script on its
# stdin: FFmpeg 5.1 and 9 cannot read an input URL from a file (`-/i` is not supported), while the
# concat demuxer is in every build and opens its one `file` with the `option` lines as that
# input's options, exactly as `-i URL` would (same errors, same start-up time). -safe 0 allows a
# URL there; the whitelist keeps the script to RTSP(S), so it cannot name a local file. The
# camera's input does the probing; -nofind_stream_info stops the concat demuxer around it from
# probing again, which would wait for one more frame (40 ms at 25 fps) before the init segment.


class FailureReason(StrEnum):
    """Why FFmpeg could not pull a camera, as shown in status and events."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    AUTH_FAILED = "auth failed"
    NOT_FOUND = "not found"
    UNSUPPORTED_CODEC = "unsupported codec"
    NO_VIDEO = "no video"
    SPAWN_FAILED = "spawn failed"  # FFmpeg could not be started (e.g. out of file descriptors)
    STALLED = "stalled"
    UNKNOWN = "unknown"


_URL = re.compile(r"'?\w+://\S+")
_REASON_PATTERNS: list[tuple[FailureReason, re.Pattern[str]]] = [
    (FailureReason.AUTH_FAILED, re.compile(r"\b401\b|Unauthorized|authoriz", re.I)),
    (FailureReason.NOT_FOUND, re.compile(r"\b404\b|Not Found|No such file", re.I)),
    (
        FailureReason.UNREACHABLE,
        re.compile(
            r"Connection refused|No route to host|Network is unreachable|Name or service not known|"
            r"Temporary failure in name resolution|Host is unreachable|Connection reset",
            re.I,
        ),
    ),
    (FailureReason.TIMEOUT, re.compile(r"timed out|Timeout", re.I)),
    (
        FailureReason.UNSUPPORTED_CODEC,
        re.compile(
            r"codec not currently supported|Could not find tag for codec|Unsupported codec|"
            r"Decoder \(codec \w+\) not found",
            re.I,
        ),
    ),
    (FailureReason.NO_VIDEO, re.compile(r"Stream map '0:v:0' matches no streams", re.I)),
]


@dataclass
class Failure:
    reason: FailureReason
    detail: str = field(default="")


def classify_stderr(lines: list[str], exit_code: int | None) -> Failure:
    """The most specific reason found in FFmpeg's last stderr lines."""
    for reason, pattern in _REASON_PATTERNS:
        for line in reversed(lines):
            # A URL in the line (FFmpeg names the input) must not match: port 40171 is no 401.
            if pattern.search(_URL.sub("", line)):
                return Failure(reason, line.strip()[:300])
    tail = next((line.strip() for line in reversed(lines) if line.strip()), "")
    detail = tail[:300] or (f"ffmpeg exited with code {exit_code}" if exit_code is not None else "")
    return Failure(FailureReason.UNKNOWN, detail)


def classify_probe_failure(lines: list[str], elapsed_s: float, timeout_s: float) -> Failure:
    """Like `classify_stderr`, for FFmpeg describing a camera. A camera that accepts the
    connection and never answers makes FFmpeg give up after the socket timeout with a vague
    "Invalid data found"; having waited that long is what tells the reason."""
    failure = classify_stderr(lines, None)
    if failure.reason is FailureReason.UNKNOWN and elapsed_s >= 0.9 * timeout_s:
        return Failure(FailureReason.TIMEOUT, f"no answer within {timeout_s:g}s ({failure.detail})")
    return failure


STDERR_LINE_MAX_BYTES = 4096
_CUT_MARK = "[...]"


class StderrLines:
    """FFmpeg's stderr bytes as text lines, however they arrive, in bounded memory.

    A line longer than `max_bytes` keeps its head and ends in `[...]`. Its last, cut-off word is
    dropped with the rest: a URL cut before its '@' would no longer look like credentials to
    the redaction that comes next.
    """

    def __init__(self, max_bytes: int = STDERR_LINE_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._partial = bytearray()
        self._cut = False

    def feed(self, chunk: bytes) -> list[str]:
        """The lines that `chunk` completes (a `\\r` ends a line too, as FFmpeg's progress)."""
        *ended, rest = chunk.replace(b"\r", b"\n").split(b"\n")
        lines = []
        for piece in ended:
            self._append(piece)
            lines.append(self._take())
        self._append(rest)
        return [line for line in lines if line]

    def close(self) -> list[str]:
        """The unfinished last line, if any (stderr has ended)."""
        line = self._take()
        return [line] if line else []

    def _append(self, piece: bytes) -> None:
        room = self._max_bytes - len(self._partial)
        if len(piece) > room:
            self._cut = True
        self._partial += piece[: max(room, 0)]

    def _take(self) -> str:
        text = self._partial.decode("utf-8", "replace").rstrip()
        if self._cut:
            words = text.rsplit(None, 1)
            text = f"{words[0]} {_CUT_MARK}" if len(words) == 2 else _CUT_MARK
        self._partial.clear()
        self._cut = False
        return text
