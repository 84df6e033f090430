"""The WebRTC output of one camera: its fragments as Annex-B access units, the pictures since the
latest keyframe for viewers who join, its AAC as Opus while a viewer listens, and bounded queues
per viewer.

The stream task calls `set_init`, `add_fragment`, `discontinuity` and `close`; each converts a
picture (and transcodes audio) once for every viewer and appends it to queues, never waiting.
A viewer's queues are made when its offer is answered (`subscribe`, counted against the limit)
and join the stream when its tracks first ask for media (`join`, `join_audio`). Nothing here
knows RTP or HTTP: ``camgate.outputs.webrtc.session`` hands the queues to aiortc.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from camgate.config import Settings
from camgate.errors import CapacityReached, InvalidInput
from camgate.fmp4 import Fmp4Error, Fragment, InitSegment, TrackInfo
from camgate.outputs.sink import SinkStats, media_age_s
from camgate.outputs.webrtc.access_unit import AvcConfig, access_unit, avc_config
from camgate.outputs.webrtc.audio import AudioQueue, OpusTranscoder, aac_config
from camgate.outputs.webrtc.samples import track_samples
from camgate.outputs.webrtc.viewer import (
    RTP_CLOCK_HZ,
    EncodedFrame,
    ViewerEnd,
    ViewerQueue,
)

log = logging.getLogger("camgate.webrtc")

GOP_MAX_BYTES = 8_000_000  # a larger group of pictures is not kept: joiners wait for a keyframe
# About four seconds at 25 fps: the sender empties a queue as fast as it fills unless the
# event loop is starved, so a queue this long means a viewer that cannot keep up.
VIEWER_QUEUE_FRAMES = 100
HEVC_ENTRIES = (b"hvc1", b"hev1")


@dataclass(frozen=True)
class WebRtcStats(SinkStats):
    viewers: int = 0
    frames: int = 0
    frames_dropped: int = 0
    plis_received: int = 0
    sessions_dropped: int = 0
    audio_viewers: int = 0
    audio_packets: int = 0


@dataclass
class SessionCounters:
    """Totals the sessions of one camera add to (RTCP is read in the session, not here)."""

    bytes_sent: int = 0
    plis_received: int = 0
    sessions_dropped: int = 0
    frames_dropped: int = 0


def unsupported_video(init: InitSegment) -> str | None:
    """Why this stream cannot be sent over WebRTC, or None when it can."""
    if init.video_track_id is None:
        return "the camera sends no video"
    codec = init.codecs.split(",")[0]
    if codec.startswith(("hvc1", "hev1")):
        return (
            "the camera sends H.265, which camgate's WebRTC output cannot send yet: set the "
            "camera's override videoCodec: h264 (re-encodes once in FFmpeg), or use HLS/MSE"
        )
    if not codec.startswith(("avc1", "avc3")):
        return f"the camera's video codec {codec or 'unknown'} cannot be sent over WebRTC"
    return None


class WebRtcSink:
    name = "webrtc"

    def __init__(
        self, max_viewers: int, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_viewers = max_viewers
        self.counters = SessionCounters()
        self._monotonic = monotonic
        self._init: InitSegment | None = None
        self._config: AvcConfig | None = None
        self._track: TrackInfo | None = None
        self._unsupported: str | None = None
        self._next_decode = 0
        self._group: list[EncodedFrame] = []
        self._group_bytes = 0
        self._keyframe_seen = False
        self._viewers: set[ViewerQueue] = set()
        self._aac: tuple[TrackInfo, bytes] | None = None
        self._listeners: set[AudioQueue] = set()
        self._transcoder: OpusTranscoder | None = None
        self.audio_packets = 0
        self._closed = False
        self.frames_total = 0
        self.last_frame_monotonic: float | None = None

    # --- input (from the stream task) ---

    def set_init(self, init: InitSegment) -> None:
        self._init = init
        self._unsupported = unsupported_video(init)
        self._config, self._track = None, None
        if self._unsupported is None:
            try:
                self._config = avc_config(init)
            except Fmp4Error as error:
                self._unsupported = f"the camera's H.264 configuration is unreadable: {error}"
            self._track = next(t for t in init.tracks if t.track_id == init.video_track_id)
        try:
            self._aac = aac_config(init)
        except (Fmp4Error, IndexError) as error:
            log.warning("webrtc: the camera's audio configuration is unreadable: %s", error)
            self._aac = None
        self._restart()

    def add_fragment(self, fragment: Fragment) -> None:
        self._add_audio(fragment)
        config, track = self._config, self._track
        if config is None or track is None or not fragment.video_samples:
            return
        try:
            samples = track_samples(fragment.data, track, self._next_decode)
            units = [access_unit(sample.data, config) for sample in samples]
        except Fmp4Error as error:
            log.warning("webrtc: skipped a fragment: %s", error)
            return
        for sample, (data, keyframe) in zip(samples, units, strict=True):
            self._next_decode = sample.decode_time + sample.duration
            pts = sample.presentation_time * RTP_CLOCK_HZ // track.timescale
            self._add_frame(EncodedFrame(data, pts, keyframe))

    def _add_frame(self, frame: EncodedFrame) -> None:
        self.frames_total += 1
        self.last_frame_monotonic = self._monotonic()
        self._keep(frame)
        for viewer in self._viewers:
            viewer.offer(frame)

    def _add_audio(self, fragment: Fragment) -> None:
        if self._aac is None or not any(queue.joined for queue in self._listeners):
            return
        track, config = self._aac
        if self._transcoder is None:
            self._transcoder = OpusTranscoder(config)
        try:
            samples = track_samples(fragment.data, track)
        except Fmp4Error as error:
            log.warning("webrtc: skipped a fragment's audio: %s", error)
            return
        for packet in self._transcoder.transcode(samples):
            self.audio_packets += 1
            for queue in self._listeners:
                queue.offer(packet)

    def _keep(self, frame: EncodedFrame) -> None:
        if frame.keyframe:
            self._keyframe_seen = True
            self._group, self._group_bytes = [], 0
        elif not self._group:
            return
        if self._group_bytes + len(frame.data) > GOP_MAX_BYTES:
            self._group, self._group_bytes = [], 0
            return
        self._group.append(frame)
        self._group_bytes += len(frame.data)

    def discontinuity(self) -> None:
        self._restart()

    def _restart(self) -> None:
        self._keyframe_seen = False
        self._next_decode = 0
        self._group, self._group_bytes = [], 0
        self._transcoder = None  # a new run's AAC may differ; its decoder starts afresh
        for viewer in self._viewers:
            viewer.restart()

    def close(self) -> None:
        self._closed = True
        self._group, self._group_bytes = [], 0
        for viewer in self._viewers:
            viewer.finish(ViewerEnd.STREAM_STOPPED)
        self._viewers.clear()
        for queue in self._listeners:
            queue.finish()
        self._listeners.clear()
        self._transcoder = None

    # --- viewers (from the WHEP sessions) ---

    def subscribe(self) -> ViewerQueue:
        """A new viewer's queue, pending until `join`.

        Raises InvalidInput when the camera's video cannot go over WebRTC and CapacityReached
        when the camera has ``max_viewers`` already."""
        if self._unsupported is not None:
            raise InvalidInput(self._unsupported)
        if len(self._viewers) >= self.max_viewers:
            raise CapacityReached(
                f"this camera has {self.max_viewers} WebRTC viewers already "
                "(WEBRTC_MAX_VIEWERS_PER_CAMERA)",
                retry_after_s=10,
            )
        viewer = ViewerQueue(VIEWER_QUEUE_FRAMES)
        if self._closed:
            viewer.finish(ViewerEnd.STREAM_STOPPED)
            return viewer
        self._viewers.add(viewer)
        return viewer

    def join(self, viewer: ViewerQueue) -> None:
        """The viewer is connected and wants pictures: from the latest keyframe on."""
        if viewer in self._viewers:
            viewer.start(self._group)

    def unsubscribe(self, viewer: ViewerQueue) -> None:
        if viewer in self._viewers:
            self._viewers.discard(viewer)
            self.counters.frames_dropped += viewer.frames_dropped

    def subscribe_audio(self) -> AudioQueue | None:
        """A viewer's audio queue, or None when the camera has no audio WebRTC can carry."""
        if self._aac is None or self._closed:
            return None
        queue = AudioQueue()
        self._listeners.add(queue)
        return queue

    def join_audio(self, queue: AudioQueue) -> None:
        """The viewer's audio track asks for packets: transcoding runs while one has joined."""
        if queue in self._listeners:
            queue.joined = True

    def unsubscribe_audio(self, queue: AudioQueue) -> None:
        self._listeners.discard(queue)
        queue.finish()
        if not any(listener.joined for listener in self._listeners):
            self._transcoder = None

    # --- state ---

    @property
    def has_audio(self) -> bool:
        return self._aac is not None

    @property
    def unsupported(self) -> str | None:
        return self._unsupported

    @property
    def ready(self) -> bool:
        """A viewer joining now gets a keyframe at once (or is told at once why it cannot)."""
        if self._init is None:
            return False
        return self._unsupported is not None or self._keyframe_seen

    @property
    def consumers(self) -> int:
        return len(self._viewers)

    def stats(self) -> WebRtcStats:
        counters = self.counters
        return WebRtcStats(
            consumers=len(self._viewers),
            bytes_held=self._group_bytes,
            bytes_sent=counters.bytes_sent,
            last_media_age_s=media_age_s(self.last_frame_monotonic, self._monotonic()),
            viewers=len(self._viewers),
            frames=self.frames_total,
            frames_dropped=counters.frames_dropped
            + sum(viewer.frames_dropped for viewer in self._viewers),
            plis_received=counters.plis_received,
            sessions_dropped=counters.sessions_dropped,
            audio_viewers=sum(1 for queue in self._listeners if queue.joined),
            audio_packets=self.audio_packets,
        )


class WebRtcOutput:
    """Makes each starting stream's WebRTC sink."""

    name = "webrtc"

    def create(self, camera_id: str, settings: Settings) -> WebRtcSink:
        return WebRtcSink(settings.webrtc_max_viewers_per_camera)
