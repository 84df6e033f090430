"""The typed shape of a stream's status, as the API, events and the dashboard show it.

Pure models: `Stream.status()` fills them in; nothing here reads a stream. The camera URL appears
only redacted. The OpenAPI schema is generated from these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from camgate.state import StreamState


class Playback(BaseModel):
    """Where to watch the camera (paths on this server)."""

    hls: str
    llhls: str
    plainHls: str
    player: str
    snapshot: str | None = Field(None, description="the latest keyframe as a JPEG")


class VideoCodec(BaseModel):
    codec: str | None
    width: int | None
    height: int | None
    fps: float | None


class AudioCodec(BaseModel):
    codec: str | None
    sampleRate: int | None


class Codecs(BaseModel):
    output: str | None = Field(description="RFC 6381 codecs of what viewers get, once known")
    outputSize: str | None = Field(description="picture size viewers get")
    video: VideoCodec | None
    audio: AudioCodec | None


class Transcoding(BaseModel):
    """What FFmpeg re-encodes; false means copied as the camera sends it."""

    video: bool = Field(description="video re-encoded with x264 (an override asks for it)")
    audio: bool = Field(description="audio converted to AAC (G.711 and other camera codecs)")


BrowserSupport = Literal["all", "some", "none"]

HEVC_NOTE = (
    "H.265 plays only in some browsers (Safari, Chrome or Edge with hardware decoding); "
    'set the override {"videoCodec": "h264"} to convert it for every browser'
)


class BrowserPlayback(BaseModel):
    """Whether browsers can play what viewers get (null until the video codec is known)."""

    playable: BrowserSupport | None = Field(
        None, description="all: every browser (H.264); some: only some (H.265); none"
    )
    note: str | None = Field(None, description="what to do when not every browser plays it")


def browser_playback(video_codec: str | None, reencoded: bool) -> BrowserPlayback:
    """What browsers make of the output video: camgate's encoder writes H.264, else the
    camera's codec is copied."""
    if reencoded or video_codec == "h264":
        return BrowserPlayback(playable="all")
    if video_codec is None:
        return BrowserPlayback()
    if video_codec == "hevc":
        return BrowserPlayback(playable="some", note=HEVC_NOTE)
    return BrowserPlayback(
        playable="none",
        note=f"{video_codec} video does not play in browsers: set the override "
        '{"videoCodec": "h264"} to convert it',
    )


class HlsStatus(BaseModel):
    """What the in-memory HLS output holds now (bounded by HLS_MAX_SEGMENTS)."""

    segments: int = 0
    parts: int = 0
    bytesHeld: int = 0
    fragments: int = 0
    fragmentsDropped: int = 0
    consumers: int = 0
    bytesSent: int = 0
    lastMediaAgeSeconds: float | None = None


class StreamStatus(BaseModel):
    """Everything a user needs to tell whether a camera is healthy, and why not."""

    cameraId: str
    state: StreamState = Field(description="idle: an on-demand camera nobody watches (not pulled)")
    onDemand: bool = False
    source: str = Field("api", description="file: declared in the camera file, which wins")
    consumers: int = Field(0, description="viewers of all outputs now")
    rtspUrl: str = Field(description="the camera URL with user and password masked")
    playback: Playback
    hlsUrl: str
    startedAt: str | None = Field(description="ISO 8601, when the stream was last started")
    runningSince: str | None = Field(description="ISO 8601; null unless running")
    uptimeSeconds: float
    restartCount: int
    attempt: int
    lastError: str | None
    reason: str | None
    nextRetryAt: str | None
    overrides: dict[str, Any]
    transcoding: bool = Field(description="anything is re-encoded (video or audio)")
    transcodes: Transcoding = Field(description="what is re-encoded, video and audio apart")
    browserPlayback: BrowserPlayback = Field(default_factory=BrowserPlayback)
    codecs: Codecs
    bytesReceived: int
    pid: int | None
    hls: HlsStatus
    outputs: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="figures of every output (hls, ...), by name"
    )
    owner: str | None = Field(
        None, description="several nodes: the node that runs the camera (null: none yet)"
    )
    ownerUrl: str | None = Field(None, description="several nodes: the owner's base URL")


class StreamList(BaseModel):
    streams: list[StreamStatus]
    activeCount: int = Field(
        description="streams holding one of MAX_CONCURRENT_STREAMS: running, starting or "
        "reconnecting after a failure"
    )
    runningCount: int = Field(description="streams delivering media now (state running)")
    maxConcurrentStreams: int
    totalCount: int


class StatusReply(BaseModel):
    success: bool
    message: str | None = None
    data: StreamStatus


class ListReply(BaseModel):
    success: bool
    data: StreamList


class MessageReply(BaseModel):
    success: bool
    message: str


class ViewerUrl(BaseModel):
    watch: str = Field(description="the player page, signed")
    hls: str = Field(description="the LL-HLS playlist, signed")
    expiresAt: str
    ttlSeconds: int


class ViewerUrlReply(BaseModel):
    success: bool
    message: str
    data: ViewerUrl


class ErrorReply(BaseModel):
    success: bool = False
    error: str
