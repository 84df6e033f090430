"""A stand-in for FFmpeg that replays a captured fragmented MP4, for fast in-process API tests.

Run as FFMPEG_PATH (through the wrapper `install_fake_ffmpeg` writes). Asked to describe a camera
(no `pipe:1` in its arguments) it prints the input dump camgate parses and exits; asked to
stream, it describes its input as FFmpeg does, writes the fixture's init segment, then one fragment every frame interval, in real
time, then keeps stdout open as a camera that went quiet would. It reads and ignores stdin (the
input script). Standard library only.
"""

from __future__ import annotations

import stat
import struct
import sys
import time
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "unit" / "data" / "video_every_frame_ff9.mp4"
FRAME_S = 0.04  # the fixture is 25 fps
INPUT_DUMP = (
    "Input #0, rtsp, from 'pipe:0':\n"
    "  Stream #0:0: Video: h264 (High), yuv420p(progressive), 160x90, 25 fps, 25 tbr, 90k tbn\n"
)


def boxes(data: bytes) -> list[bytes]:
    """Top-level ISO-BMFF boxes, each with its header."""
    found, offset = [], 0
    while offset + 8 <= len(data):
        (size,) = struct.unpack(">I", data[offset : offset + 4])
        found.append(data[offset : offset + size])
        offset += size
    return found


def main(argv: list[str]) -> int:
    sys.stdin.buffer.read()  # the input script; the URL in it is not used
    if "pipe:1" not in argv:
        sys.stderr.write(INPUT_DUMP)
        return 1  # FFmpeg without an output exits with an error after the dump
    sys.stderr.write(INPUT_DUMP + "Stream mapping:\n  Stream #0:0 -> #0:0 (copy)\n")
    sys.stderr.flush()
    items = boxes(FIXTURE.read_bytes())
    init = b"".join(box for box in items if box[4:8] in (b"ftyp", b"moov"))
    out = sys.stdout.buffer
    out.write(init)
    out.flush()
    fragments = [box for box in items if box[4:8] in (b"moof", b"mdat")]
    started = time.monotonic()
    for n in range(0, len(fragments) - 1, 2):
        time.sleep(max(0.0, started + (n // 2) * FRAME_S - time.monotonic()))
        out.write(fragments[n] + fragments[n + 1])
        out.flush()
    time.sleep(3600)  # quiet, like a camera that stopped sending
    return 0


def install_fake_ffmpeg(directory: Path) -> Path:
    """An executable `ffmpeg` in `directory` that runs this script; returns its path."""
    wrapper = directory / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
