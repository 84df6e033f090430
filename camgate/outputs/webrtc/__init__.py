"""WebRTC playback over WHEP: the camera's H.264 repacketized into RTP, never re-encoded.

`samples` cuts a fragment into pictures, `access_unit` turns each into Annex-B with the
parameter sets before keyframes, `WebRtcSink` keeps the pictures since the latest keyframe and
fans them out to each viewer's `ViewerQueue`, `session` feeds a queue to an aiortc peer
connection and `sessions` owns every session. ``camgate.api.outputs.whep`` is the HTTP side.
"""

from __future__ import annotations

from camgate.outputs.webrtc.sessions import Answer, WhepSessions
from camgate.outputs.webrtc.sink import WebRtcOutput, WebRtcSink, WebRtcStats

__all__ = ["Answer", "WebRtcOutput", "WebRtcSink", "WebRtcStats", "WhepSessions"]
