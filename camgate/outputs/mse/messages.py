"""The control messages of the MSE WebSocket, as JSON text (media goes in binary messages).

    {"type": "init", "mime": "video/mp4; codecs=\"avc1.64001f,mp4a.40.2\"", "codecs": "...",
     "width": 1280, "height": 720}
        the next binary message is an init segment; drop everything buffered and start over
        with it (a camera that came back with another resolution or codec is announced again)
    {"type": "discontinuity"}
        the camera's stream was interrupted; a new "init" follows when it is back

Every binary message after an init segment is one fMP4 fragment (moof+mdat), in order, the
first of them starting with a video keyframe.
"""

from __future__ import annotations

import json

from camgate.fmp4 import InitSegment


def mime_type(init: InitSegment) -> str:
    """The MIME type `MediaSource.isTypeSupported` and `addSourceBuffer` take (RFC 6381)."""
    container = "video/mp4" if init.video_track_id is not None else "audio/mp4"
    return f'{container}; codecs="{init.codecs}"' if init.codecs else container


def init_message(init: InitSegment) -> str:
    return json.dumps(
        {
            "type": "init",
            "mime": mime_type(init),
            "codecs": init.codecs,
            "width": init.width,
            "height": init.height,
        }
    )


def discontinuity_message() -> str:
    return json.dumps({"type": "discontinuity"})
