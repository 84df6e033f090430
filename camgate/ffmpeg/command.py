"""Finding the FFmpeg binary and building the commands camgate runs it with.

Pure functions only: this module never starts a process. Every argv element comes from a
validated `CameraSpec` and `Settings`; nothing is ever passed through a shell, and the camera
URL goes to FFmpeg's stdin, never into its argv.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from camgate.camera import CameraSpec
from camgate.config import Settings
from camgate.errors import InvalidInput
from camgate.ffmpeg.stderr import MediaInfo

# empty_moov: the init segment comes first and alone; default_base_moof: fragments are
# self-contained for MSE; frag_keyframe: a keyframe always starts a fragment. A fragment per packet
# (-frag_duration of 1 us) lets the segmenter group frames into LL-HLS parts by frame count
# (docs/llhls.md: exact part control). frag_every_frame would do the same but writes audio packets
# without timestamps ("pts has no value") when a camera has audio. skip_trailer: without it the
# muxer keeps an index entry per fragment for a trailer a pipe never gets, ~1 KB/s per camera
# for as long as FFmpeg runs (docs/benchmarks.md, uptime).
MOVFLAGS = "empty_moov+default_base_moof+frag_keyframe+skip_trailer"
FRAGMENT_ARGS = ["-movflags", MOVFLAGS, "-frag_duration", "1"]
BROWSER_AUDIO = {"aac"}
CAMERA_MARKER = "camgate_camera"


def find_ffmpeg(configured: str | None) -> str:
    """FFMPEG_PATH if set, else `ffmpeg` on PATH, else the binary of the imageio-ffmpeg wheel."""
    if configured:
        path = Path(configured)
        resolved = shutil.which(configured) if path.name == configured else None
        if resolved:
            return resolved
        if path.is_file():
            return str(path)
        raise InvalidInput(f"invalid setting FFMPEG_PATH={configured!r}: no such executable")
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as error:
        raise InvalidInput(
            "no FFmpeg found: set FFMPEG_PATH, install ffmpeg, or install imageio-ffmpeg"
        ) from error


INPUT_PROTOCOLS = "pipe,tcp,tls"
CONCAT_INPUT = [
    *("-f", "concat", "-safe", "0", "-protocol_whitelist", INPUT_PROTOCOLS),
    *("-nofind_stream_info", "-i", "pipe:0"),
]
# docs/llhls.md: tiny probing makes the init segment come ~2 s sooner; it relies on the SPS/PPS in
# the camera's SDP, so the caller falls back to default probing without them.
FAST_PROBE = {"fflags": "nobuffer", "probesize": "32", "analyzeduration": "0"}


@dataclass(frozen=True)
class FfmpegCommand:
    """An FFmpeg run: `argv` (public, names no camera URL) and the `script` it reads on stdin."""

    argv: list[str]
    script: str = field(repr=False)

    @property
    def stdin_bytes(self) -> bytes:
        return self.script.encode("utf-8")


def ffconcat_quote(value: str) -> str:
    """`value` as one ffconcat token: inside '...' everything is literal but a quote, which
    closes the quotes, is escaped, and opens them again (FFmpeg's av_get_token)."""
    if any(c in value for c in "\n\r\0"):
        raise InvalidInput("an FFmpeg input script value cannot hold a line break or NUL")
    return "'" + value.replace("'", "'\\''") + "'"


def input_script(spec: CameraSpec, settings: Settings, fast_probe: bool) -> str:
    """The ffconcat script that names the camera and its input options (it holds the URL)."""
    options = {"rtsp_transport": "tcp", "timeout": str(int(settings.rtsp_timeout_s * 1_000_000))}
    if fast_probe:
        options.update(FAST_PROBE)
    lines = ["ffconcat version 1.0", f"file {ffconcat_quote(spec.url)}"]
    lines += [f"option {name} {ffconcat_quote(value)}" for name, value in options.items()]
    return "\n".join(lines) + "\n"


def probe_command(ffmpeg: str, spec: CameraSpec, settings: Settings) -> FfmpegCommand:
    """FFmpeg asked only to describe the camera's streams (it exits after the input dump)."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "info", *CONCAT_INPUT]
    return FfmpegCommand(argv, input_script(spec, settings, fast_probe=True))


def _video_args(spec: CameraSpec, settings: Settings, info: MediaInfo) -> list[str]:
    wants = spec.overrides
    if not wants.reencode:
        # Safari and hls.js's codec checks want H.265 in MP4 tagged hvc1 (FFmpeg writes hev1).
        return ["-c:v", "copy", *(["-tag:v", "hvc1"] if info.video_codec == "hevc" else [])]
    bitrate = wants.videoBitrate or settings.default_video_bitrate
    args = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        bitrate,
        "-maxrate",
        bitrate,
        # A keyframe every second keeps segments short; parts do not need keyframes.
        "-force_key_frames",
        "expr:gte(t,n_forced*1)",
    ]
    resolution = wants.resolution or settings.default_resolution
    if resolution:
        args += ["-s", resolution]
    if wants.framerate:
        args += ["-r", str(wants.framerate)]
    return args


def converts_audio(spec: CameraSpec, info: MediaInfo) -> bool:
    """True when the camera's audio is re-encoded to AAC (not copied, not dropped)."""
    choice = spec.overrides.audio or "auto"
    if info.audio_codec is None or choice == "none":
        return False
    return not (choice == "auto" and info.audio_codec in BROWSER_AUDIO)


def _audio_args(spec: CameraSpec, info: MediaInfo) -> list[str]:
    if info.audio_codec is None or spec.overrides.audio == "none":
        return ["-an"]
    if not converts_audio(spec, info):
        return ["-c:a", "copy"]
    # G.711 and other camera codecs do not play in browsers: AAC costs ~1 % of a core.
    return ["-c:a", "aac", "-b:a", "64k", "-ar", "48000"]


def sends_packets(spec: CameraSpec, info: MediaInfo) -> bool:
    """Whether FFmpeg can write the camera's pictures a second time, as they come (see
    `packet_output`): only for H.264 that is copied, so nothing is encoded twice."""
    return not spec.overrides.reencode and info.video_codec == "h264"


def packet_output(fd: int) -> list[str]:
    """A second output on inherited pipe ``fd``: the copied H.264 in FLV, flushed after every
    packet. The MP4 muxer holds each picture until the next one arrives (its duration is the
    gap to the next); FLV needs no duration, so this output is a frame ahead (camgate.flv)."""
    return [
        *("-map", "0:v:0", "-c:v", "copy", "-an"),
        *("-flush_packets", "1", "-flvflags", "no_duration_filesize"),
        *("-f", "flv", f"pipe:{fd}"),
    ]


def stream_command(
    ffmpeg: str,
    spec: CameraSpec,
    settings: Settings,
    info: MediaInfo,
    fast_probe: bool = True,
    packet_fd: int | None = None,
) -> FfmpegCommand:
    """FFmpeg pulling one camera and writing fragmented MP4 to stdout, and with ``packet_fd``
    the video once more, packet by packet, to that inherited pipe (`packet_output`)."""
    maps = ["-map", "0:v:0"] + (["-map", "0:a:0"] if info.audio_codec else [])
    argv = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-nostats",
        # info: FFmpeg describes the camera's streams before writing any output, which checks
        # the codec facts this command was built from (camgate.pull: no separate probe).
        "-loglevel",
        "info",
        *CONCAT_INPUT,
        *maps,
        *_video_args(spec, settings, info),
        *_audio_args(spec, info),
        # Names the camera in `ps` for operators and tests; the MP4 muxer writes only known
        # keys, so the output does not change.
        *("-metadata", f"{CAMERA_MARKER}={spec.camera_id}"),
        *("-f", "mp4", *FRAGMENT_ARGS, "pipe:1"),
        *(packet_output(packet_fd) if packet_fd is not None else []),
    ]
    return FfmpegCommand(argv, input_script(spec, settings, fast_probe))
