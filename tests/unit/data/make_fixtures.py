"""Regenerate the fragmented-MP4 fixtures used by the unit tests.

Each fixture is what FFmpeg writes to its stdout pipe in camgate (``-f mp4`` with the movflags
below), made from a synthetic test pattern so no camera is needed. ``expected.json`` holds the
packet facts ffprobe reports for each file, an independent truth the reader tests compare with.

Run from anywhere: ``python tests/unit/data/make_fixtures.py``. Needs ``ffmpeg``/``ffprobe`` on
PATH (Debian FFmpeg 5.1 here) and the ``imageio-ffmpeg`` package (FFmpeg 9 here). Keep the output
small: the files are committed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg

DATA_DIR = Path(__file__).resolve().parent
EVERY_FRAME = "empty_moov+default_base_moof+frag_every_frame+frag_keyframe"
BY_DURATION = "empty_moov+default_base_moof+frag_keyframe"
VIDEO_IN = ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=25"]
AUDIO_IN = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
VIDEO_OUT = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
AUDIO_OUT = ["-c:a", "aac", "-b:a", "32k"]


def fixture_specs(system_ffmpeg: str, bundled_ffmpeg: str) -> dict[str, list[str]]:
    """Name -> FFmpeg argv (without output) for every fixture."""
    return {
        # Audio+video, one fragment per packet, 1 s GOP (FFmpeg 5.1).
        "av_every_frame_ff5.mp4": [
            system_ffmpeg,
            *VIDEO_IN,
            *AUDIO_IN,
            "-t",
            "3",
            *VIDEO_OUT,
            "-g",
            "25",
            *AUDIO_OUT,
            "-f",
            "mp4",
            "-movflags",
            EVERY_FRAME,
        ],
        # Video only, one fragment per frame, 2 s GOP (FFmpeg 9).
        "video_every_frame_ff9.mp4": [
            bundled_ffmpeg,
            *VIDEO_IN,
            "-t",
            "3",
            *VIDEO_OUT,
            "-g",
            "50",
            "-f",
            "mp4",
            "-movflags",
            EVERY_FRAME,
        ],
        # Audio+video, multi-sample fragments of ~180 ms: one moof holds several trafs (FFmpeg 9).
        "av_frag180_ff9.mp4": [
            bundled_ffmpeg,
            *VIDEO_IN,
            *AUDIO_IN,
            "-t",
            "3",
            *VIDEO_OUT,
            "-g",
            "25",
            *AUDIO_OUT,
            "-f",
            "mp4",
            "-frag_duration",
            "180000",
            "-movflags",
            BY_DURATION,
        ],
    }


def probe_packets(ffprobe: str, path: Path) -> dict[str, int]:
    """Video/audio packet and keyframe counts as ffprobe sees them."""
    out = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,flags",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    packets = json.loads(out)["packets"]
    video = [p for p in packets if p["codec_type"] == "video"]
    return {
        "video_packets": len(video),
        "video_keyframes": sum(1 for p in video if "K" in p["flags"]),
        "audio_packets": sum(1 for p in packets if p["codec_type"] == "audio"),
    }


def main() -> None:
    system_ffmpeg = shutil.which("ffmpeg")
    ffprobe = shutil.which("ffprobe")
    if system_ffmpeg is None or ffprobe is None:
        raise SystemExit("ffmpeg and ffprobe must be on PATH")
    expected: dict[str, dict[str, int]] = {}
    specs = fixture_specs(system_ffmpeg, imageio_ffmpeg.get_ffmpeg_exe())
    for name, argv in specs.items():
        path = DATA_DIR / name
        subprocess.run(
            [*argv[:1], "-hide_banner", "-loglevel", "error", "-y", *argv[1:], str(path)],
            check=True,
        )
        expected[name] = probe_packets(ffprobe, path)
    (DATA_DIR / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
