"""LL-HLS from fMP4 fragments: segmenter (parts, segments, ring), playlist rendering, live state.

Nothing here knows HTTP; ``camgate.api.hls`` serves what ``LiveHls`` holds.
"""

from __future__ import annotations

from camgate.hls.live import LiveHls
from camgate.hls.playlist import is_playable, render_media_playlist
from camgate.hls.segmenter import Part, Segment, Segmenter

__all__ = ["LiveHls", "Part", "Segment", "Segmenter", "is_playable", "render_media_playlist"]
