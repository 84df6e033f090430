"""LL-HLS from fMP4 fragments: segmenter (parts, segments, ring), playlist rendering, live state.

Nothing here knows HTTP; ``camgate.api.outputs.hls`` serves what ``LiveHls`` holds.
"""

from __future__ import annotations

from camgate.outputs.hls.live import HlsOutput, HlsStats, LiveHls
from camgate.outputs.hls.playlist import is_playable, render_media_playlist
from camgate.outputs.hls.segmenter import Part, Segment, Segmenter

__all__ = [
    "HlsOutput",
    "HlsStats",
    "LiveHls",
    "Part",
    "Segment",
    "Segmenter",
    "is_playable",
    "render_media_playlist",
]
