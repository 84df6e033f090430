"""JPEG snapshots: the latest keyframe of a camera, decoded by a short FFmpeg run on request.

Nothing here knows HTTP; ``camgate.api.outputs.snapshot`` serves what ``SnapshotSink`` makes.
"""

from __future__ import annotations

from camgate.outputs.snapshot.decoder import DecodeFailed, FfmpegJpegDecoder, jpeg_argv
from camgate.outputs.snapshot.flight import Outcome, SingleFlightCache
from camgate.outputs.snapshot.sink import (
    SnapshotOutput,
    SnapshotSink,
    SnapshotStats,
    SnapshotUnavailable,
    UndecodableKeyframe,
    output_width,
)

__all__ = [
    "DecodeFailed",
    "FfmpegJpegDecoder",
    "Outcome",
    "SingleFlightCache",
    "SnapshotOutput",
    "SnapshotSink",
    "SnapshotStats",
    "SnapshotUnavailable",
    "UndecodableKeyframe",
    "jpeg_argv",
    "output_width",
]
