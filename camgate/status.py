"""A stream's status for the API, events and the dashboard. Pure: reads a `Stream`, changes
nothing. The camera URL appears only redacted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camgate.stream import Stream


def stream_status(stream: Stream) -> dict[str, Any]:
    """Everything a user needs to tell whether a camera is healthy, and why not."""
    now = datetime.now(UTC)
    since = stream.running_since
    hls = _hls_status(stream)
    return {
        "cameraId": stream.spec.camera_id,
        "state": str(stream.state),
        "rtspUrl": stream.spec.redacted_url,
        "playback": {
            "hls": stream.playlist_path,
            "llhls": stream.playlist_path,
            "plainHls": f"{stream.playlist_path}?ll=0",
            "player": f"/watch/{stream.spec.camera_id}",
        },
        "hlsUrl": stream.playlist_path,
        "startedAt": stream.started_at.isoformat() if stream.started_at else None,
        "runningSince": since.isoformat() if since else None,
        "uptimeSeconds": round((now - since).total_seconds(), 1) if since else 0.0,
        "restartCount": stream.restart_count,
        "attempt": stream.attempt,
        "lastError": stream.last_error,
        "reason": str(stream.last_reason) if stream.last_reason else None,
        "nextRetryAt": stream.next_retry_at.isoformat() if stream.next_retry_at else None,
        "overrides": stream.spec.overrides.as_dict(),
        "transcoding": stream.spec.overrides.reencode,
        "codecs": stream.media.as_dict(),
        "bytesReceived": stream.bytes_received,
        "pid": stream.pid,
        "hls": hls,
    }


def _hls_status(stream: Stream) -> dict[str, Any]:
    """What the in-memory HLS output holds now (memory is bounded by HLS_MAX_SEGMENTS)."""
    if stream.live is None:
        return {"segments": 0, "parts": 0, "bytesHeld": 0, "lastMediaAgeSeconds": None}
    stats = stream.live.stats()
    last = stats.get("last_fragment_monotonic")
    return {
        "segments": stats.get("segments_held", 0),
        "parts": stats.get("parts_held", 0),
        "bytesHeld": stats.get("bytes_held", 0),
        "fragments": stats.get("fragments_total", 0),
        "fragmentsDropped": stats.get("fragments_dropped", 0),
        "lastMediaAgeSeconds": round(time.monotonic() - last, 2) if last else None,
    }
