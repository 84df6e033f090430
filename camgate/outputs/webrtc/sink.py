"""The WebRTC output of one camera: its fragments as Annex-B access units, the pictures since the
latest keyframe for viewers who join, its AAC as Opus while a viewer listens, and bounded queues
per viewer.

The stream task calls `set_init`, `add_fragment`, `discontinuity` and `close`, and when FFmpeg
writes the video a second time packet by packet (``camgate.flv``, a frame ahead of the MP4)
`add_packet`: from that run's sequence header on, the pictures come from the packets and the
fragments give only the audio. While a viewer is
joined each converts a picture (and transcodes audio) once for every viewer and appends it to
queues, never waiting. While none is, the fragments since the latest keyframe are only kept as
they came (`PictureGroup`) and converted when a viewer joins, so a camera nobody watches over
WebRTC costs no conversion. A viewer's queues are made when its offer is answered (`subscribe`,
counted against the limit) and join the stream when its tracks first ask for media (`join`,
`join_audio`). Nothing here knows RTP or HTTP: ``camgate.outputs.webrtc.session`` hands the
queues to aiortc.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from camgate.config import Settings
from camgate.errors import CapacityReached, InvalidInput
from camgate.flv import AvcSequenceHeader, FlvItem, VideoPacket
from camgate.fmp4 import Fmp4Error, Fragment, InitSegment, TrackInfo
from camgate.outputs.sink import SinkStats, media_age_s
from camgate.outputs.webrtc.access_unit import AvcConfig, access_unit, avc_config, parse_avcc
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
    video_feed: str = "fragments"  # or "packets": FFmpeg's second output, a frame sooner


@dataclass
class SessionCounters:
    """Totals the sessions of one camera add to (RTCP is read in the session, not here)."""

    bytes_sent: int = 0
    plis_received: int = 0
    sessions_dropped: int = 0
    frames_dropped: int = 0


def fragment_frames(
    fragment: Fragment, config: AvcConfig, track: TrackInfo, next_decode: int
) -> tuple[list[EncodedFrame], int]:
    """The access units of one fragment's video samples and where its last sample ends (for a
    following traf without tfdt). Raises Fmp4Error for a fragment whose tables do not fit."""
    frames = []
    for sample in track_samples(fragment.data, track, next_decode):
        data, keyframe = access_unit(sample.data, config)
        next_decode = sample.decode_time + sample.duration
        pts = sample.presentation_time * RTP_CLOCK_HZ // track.timescale
        frames.append(EncodedFrame(data, pts, keyframe))
    return frames, next_decode


def packet_frame(packet: VideoPacket, config: AvcConfig) -> EncodedFrame:
    """The access unit of one packet (FLV times are milliseconds)."""
    data, keyframe = access_unit(packet.data, config)
    return EncodedFrame(data, packet.pts_ms * RTP_CLOCK_HZ // 1000, keyframe)


class PictureGroup:
    """The pictures since the camera's latest keyframe, for a viewer who joins: the access units
    converted while viewers watched, then the fragments that came while none did, kept as they
    are until `take_fragments` hands them over for converting.

    A group larger than ``max_bytes`` is dropped: joiners then wait for the next keyframe."""

    def __init__(self, max_bytes: int = GOP_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.frames: list[EncodedFrame] = []
        self.fragments: list[Fragment | VideoPacket] = []
        self.keyframe_seen = False
        self._frame_bytes = 0
        self._fragment_bytes = 0

    @property
    def bytes(self) -> int:
        return self._frame_bytes + self._fragment_bytes

    def clear(self) -> None:
        self.frames, self.fragments = [], []
        self._frame_bytes = self._fragment_bytes = 0

    def hold(self, fragment: Fragment | VideoPacket) -> None:
        """A video fragment or packet nobody needs converted now (its own sync flag says
        whether it starts a group)."""
        started = bool(self.frames or self.fragments)
        if self._admits(fragment.keyframe, len(fragment.data), started):
            self.fragments.append(fragment)
            self._fragment_bytes += len(fragment.data)

    def keep(self, frame: EncodedFrame) -> None:
        """A converted picture; the group holds no unconverted fragment (see `take_fragments`)."""
        if self._admits(frame.keyframe, len(frame.data), bool(self.frames)):
            self.frames.append(frame)
            self._frame_bytes += len(frame.data)

    def _admits(self, keyframe: bool, size: int, started: bool) -> bool:
        """Whether a picture of `size` bytes joins the group: a keyframe starts a new one, any
        other picture joins a `started` group; one that would pass ``max_bytes`` drops it."""
        if keyframe:
            self.keyframe_seen = True
            self.clear()
        elif not started:
            return False
        if self.bytes + size > self.max_bytes:
            self.clear()
            return False
        return True

    def take_fragments(self) -> list[Fragment | VideoPacket]:
        """The fragments kept unconverted, in order; the caller `keep`s what they hold."""
        fragments, self.fragments, self._fragment_bytes = self.fragments, [], 0
        return fragments


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
        self._packet_config: AvcConfig | None = None  # this run's video comes from packets
        self._group = PictureGroup()
        self._viewers: set[ViewerQueue] = set()
        self._joined: set[ViewerQueue] = set()  # viewers past `join`: pictures are converted
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
        self._transcoder = None  # a new run's AAC may differ; its decoder starts afresh
        if self._packet_config is None:  # packets may have come first: keep their pictures
            self._restart_video()

    def add_fragment(self, fragment: Fragment) -> None:
        self._add_audio(fragment)
        if self._packet_config is not None or not fragment.video_samples:
            return
        if self._config is not None and self._track is not None:
            self._add_video(fragment, fragment.video_samples)

    def add_packet(self, item: FlvItem) -> None:
        """The video once more, packet by packet: a run's sequence header, then its pictures."""
        if isinstance(item, AvcSequenceHeader):
            self._use_packets(item)
        elif self._packet_config is not None:
            self._add_video(item, 1)

    def _use_packets(self, header: AvcSequenceHeader) -> None:
        try:
            config = parse_avcc(header.record)
        except (Fmp4Error, IndexError) as error:
            log.warning("webrtc: unreadable H.264 configuration in the packets: %s", error)
            return
        if self._group.bytes:  # pictures of this run came from fragments: start afresh
            self._restart_video()
        self._packet_config = config

    def _add_video(self, item: Fragment | VideoPacket, pictures: int) -> None:
        self.frames_total += pictures
        self.last_frame_monotonic = self._monotonic()
        if not self._joined:
            self._group.hold(item)
            return
        for frame in self._convert(item):
            self._group.keep(frame)
            for viewer in self._viewers:
                viewer.offer(frame)

    def _convert(self, item: Fragment | VideoPacket) -> list[EncodedFrame]:
        """The access units of a fragment or packet (none, with a warning, when malformed)."""
        try:
            if isinstance(item, VideoPacket):
                assert self._packet_config is not None
                return [packet_frame(item, self._packet_config)]
            assert self._config is not None and self._track is not None
            frames, self._next_decode = fragment_frames(
                item, self._config, self._track, self._next_decode
            )
        except Fmp4Error as error:
            log.warning("webrtc: skipped a picture: %s", error)
            return []
        return frames

    def _convert_held(self) -> None:
        """Convert the fragments kept while nobody was joined, so the group is access units."""
        for fragment in self._group.take_fragments():
            for frame in self._convert(fragment):
                self._group.keep(frame)

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

    def discontinuity(self) -> None:
        self._packet_config = None  # the next run says again whether packets come
        self._transcoder = None
        self._restart_video()

    def _restart_video(self) -> None:
        self._next_decode = 0
        self._group = PictureGroup()
        for viewer in self._viewers:
            viewer.restart()

    def close(self) -> None:
        self._closed = True
        self._group = PictureGroup()
        for viewer in self._viewers:
            viewer.finish(ViewerEnd.STREAM_STOPPED)
        self._viewers.clear()
        self._joined.clear()
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
        """The viewer is connected and wants pictures: from the latest keyframe on (the
        fragments kept unconverted are converted now, once, for every later viewer too)."""
        if viewer in self._viewers:
            self._convert_held()
            self._joined.add(viewer)
            viewer.start(self._group.frames)

    def unsubscribe(self, viewer: ViewerQueue) -> None:
        self._joined.discard(viewer)
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
        return self._unsupported is not None or self._group.keyframe_seen

    @property
    def consumers(self) -> int:
        return len(self._viewers)

    def stats(self) -> WebRtcStats:
        counters = self.counters
        return WebRtcStats(
            consumers=len(self._viewers),
            bytes_held=self._group.bytes,
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
            video_feed="packets" if self._packet_config is not None else "fragments",
        )


class WebRtcOutput:
    """Makes each starting stream's WebRTC sink."""

    name = "webrtc"

    def create(self, camera_id: str, settings: Settings) -> WebRtcSink:
        return WebRtcSink(settings.webrtc_max_viewers_per_camera)
