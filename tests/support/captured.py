"""The captured FFmpeg output unit tests replay, and a WebRTC viewer's frames read out."""

from __future__ import annotations

from pathlib import Path

from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from camgate.outputs.webrtc.viewer import TimedFrame, ViewerQueue

DATA = Path(__file__).resolve().parents[1] / "unit" / "data"
AV_FIXTURE = DATA / "av_every_frame_ff5.mp4"  # FFmpeg 5: 75 pictures at 25 fps with AAC


def fixture_stream(path: Path = AV_FIXTURE) -> tuple[InitSegment, list[Fragment]]:
    """The init segment and the fragments of a captured fragmented MP4."""
    init, *fragments = Fmp4Reader().feed(path.read_bytes())
    assert isinstance(init, InitSegment)
    return init, [f for f in fragments if isinstance(f, Fragment)]


def drain(viewer: ViewerQueue) -> list[TimedFrame]:
    """Every frame the viewer's queue holds now."""
    frames = []
    while (frame := viewer.take()) is not None:
        frames.append(frame)
    return frames
