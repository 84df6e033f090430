"""One WHEP viewer over aiortc: its peer connection, the track that feeds aiortc encoded pictures,
and the watchdog that ends it.

`FrameTrack.recv()` returns `av.Packet`s, which aiortc's H.264 encoder only splits into RTP
packets (``pack``), never decodes: per viewer the work is packetization and SRTP. Its first
`recv()` comes once ICE and DTLS are up; that is when the viewer joins the camera's pictures, at
the latest keyframe, the catch-up burst paced (`CatchUpPacer`). `OpusTrack` does the same with
the camera's Opus packets (transcoded once per camera, see ``audio.py``). aiortc answers
PLI/FIR by asking its encoder for a keyframe, which a pass-through track cannot do and a camera
cannot be asked for, so the viewer recovers at the camera's next keyframe (within one GOP); the
session only counts them. A viewer whose connection fails or that sends no RTCP for
``RTCP_TIMEOUT_S`` is dropped. Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, OperationError
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket

from camgate.errors import InvalidInput
from camgate.outputs.webrtc.audio import OPUS_CLOCK_HZ, AudioQueue
from camgate.outputs.webrtc.ice import offered_codecs, without_mdns_candidates
from camgate.outputs.webrtc.ports import HostPorts, use_host_ports
from camgate.outputs.webrtc.sink import SessionCounters
from camgate.outputs.webrtc.viewer import RTP_CLOCK_HZ, CatchUpPacer, ViewerEnd, ViewerQueue

TIME_BASE = fractions.Fraction(1, RTP_CLOCK_HZ)
OPUS_TIME_BASE = fractions.Fraction(1, OPUS_CLOCK_HZ)
# Browsers send receiver reports every second or so (RFC 3550 6.2, at least every 5 s).
RTCP_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 20.0  # from the answer to an ICE+DTLS connection
WATCH_INTERVAL_S = 0.5
ENDED_STATES = {"failed", "closed"}


class FrameTrack(MediaStreamTrack):
    """A video track whose frames are one viewer's queued access units, as encoded packets."""

    kind = "video"

    def __init__(
        self, queue: ViewerQueue, counters: SessionCounters, join: Callable[[], None]
    ) -> None:
        super().__init__()
        self._queue = queue
        self._counters = counters
        self._join: Callable[[], None] | None = join
        self._pacer = CatchUpPacer()

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self._join is not None:
            self._join()
            self._join = None
        frame = await self._queue.next()
        if frame is None:
            self.stop()
            raise MediaStreamError
        if frame.catch_up:
            delay_s = self._pacer.delay_s(time.monotonic(), len(frame.data))
            if delay_s > 0:
                await asyncio.sleep(delay_s)
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = TIME_BASE
        self._counters.bytes_sent += len(frame.data)
        return packet


class OpusTrack(MediaStreamTrack):
    """An audio track whose frames are the camera's Opus packets, shared with every viewer."""

    kind = "audio"

    def __init__(self, queue: AudioQueue, join: Callable[[], None]) -> None:
        super().__init__()
        self._queue = queue
        self._join: Callable[[], None] | None = join

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self._join is not None:
            self._join()
            self._join = None
        opus = await self._queue.next()
        if opus is None:
            self.stop()
            raise MediaStreamError
        packet = av.Packet(opus.data)
        packet.pts = opus.pts
        packet.time_base = OPUS_TIME_BASE
        return packet


def h264_preferences() -> list[Any]:
    """aiortc's H.264 codecs (and their RTX), so a browser's VP8 is never chosen."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]


def opus_preferences() -> list[Any]:
    codecs = RTCRtpSender.getCapabilities("audio").codecs
    return [c for c in codecs if c.mimeType.lower() == "audio/opus"]


@dataclass(frozen=True)
class ViewerMedia:
    """What one session sends: the video queue, the audio queue (None: video only), and how
    each joins the camera's stream when its track first asks."""

    video: ViewerQueue
    join_video: Callable[[], None]
    audio: AudioQueue | None = None
    join_audio: Callable[[], None] = lambda: None


class WhepSession:
    def __init__(
        self,
        camera_id: str,
        media: ViewerMedia,
        counters: SessionCounters,
        configuration: RTCConfiguration,
        *,
        ports: HostPorts | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.camera_id = camera_id
        self.media = media
        self.queue = media.video
        self.counters = counters
        self.pc = RTCPeerConnection(configuration)
        self._ports = ports
        self.dropped = False
        self._monotonic = monotonic
        self._last_rtcp: float | None = None
        self._answered_at = monotonic()

    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to a WHEP offer: H.264 video and Opus audio (when both sides have
        audio), sent only, all candidates gathered."""
        if "H264" not in offered_codecs(offer_sdp, "video"):
            raise InvalidInput("the offer has no H.264 video: camgate's WebRTC sends H.264")
        # The transceivers exist before the offer is applied, so that the offer's sections take
        # them and their codec preferences (aiortc negotiates codecs while applying).
        media = self.media
        track = FrameTrack(media.video, self.counters, media.join_video)
        video = self.pc.addTransceiver(track, "sendonly")
        video.setCodecPreferences(h264_preferences())
        self._watch_rtcp(video)
        sending = [video]
        if media.audio is not None and "OPUS" in offered_codecs(offer_sdp, "audio"):
            audio = self.pc.addTransceiver(OpusTrack(media.audio, media.join_audio), "sendonly")
            audio.setCodecPreferences(opus_preferences())
            sending.append(audio)
        try:
            offer = RTCSessionDescription(without_mdns_candidates(offer_sdp), "offer")
            await self.pc.setRemoteDescription(offer)
        except (ValueError, InvalidAccessError, OperationError) as error:
            raise InvalidInput(f"the SDP offer cannot be used: {error}") from error
        if self._ports is not None:
            use_host_ports(self.pc, self._ports)
        for transceiver in self.pc.getTransceivers():
            if transceiver not in sending:
                transceiver.direction = "inactive"  # nothing to send there (docs/webrtc.md)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._answered_at = self._monotonic()
        return self.pc.localDescription.sdp

    def _watch_rtcp(self, transceiver: RTCRtpTransceiver) -> None:
        """Note every RTCP packet for the sender and count picture-loss requests.

        aiortc has no public hook for a sender's RTCP, so its handler is wrapped per sender."""
        sender = transceiver.sender
        handle: Callable[[Any], Awaitable[None]] = sender._handle_rtcp_packet

        async def noted(packet: Any) -> None:
            self._last_rtcp = self._monotonic()
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self.counters.plis_received += 1
            await handle(packet)

        sender._handle_rtcp_packet = noted  # type: ignore[method-assign]

    def end_reason(self) -> str | None:
        """Why this session should end now, or None while it is healthy."""
        now = self._monotonic()
        if self.queue.end is not None:
            return self.queue.end.value
        if self.pc.connectionState in ENDED_STATES:
            return f"connection {self.pc.connectionState}"
        if self._last_rtcp is None:
            if now - self._answered_at > CONNECT_TIMEOUT_S:
                return f"no connection within {CONNECT_TIMEOUT_S:g}s"
        elif now - self._last_rtcp > RTCP_TIMEOUT_S:
            return f"no RTCP from the viewer for {RTCP_TIMEOUT_S:g}s"
        return None

    async def watch(self) -> str:
        """Wait until the session should end; the reason."""
        while (reason := self.end_reason()) is None:
            await asyncio.sleep(WATCH_INTERVAL_S)
        if self.queue.end is None:
            self.dropped = True
        return reason

    async def close(self) -> None:
        self.queue.finish(ViewerEnd.CLOSED)
        if self.media.audio is not None:
            self.media.audio.finish()
        with contextlib.suppress(Exception):  # a half-open connection may fail to close cleanly
            await self.pc.close()
