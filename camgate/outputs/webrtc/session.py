"""One WHEP viewer over aiortc: its peer connection, the track that feeds aiortc encoded pictures,
and the watchdog that ends it.

`FrameTrack.recv()` returns `av.Packet`s, which aiortc's H.264 encoder only splits into RTP
packets (``pack``), never decodes: per viewer the work is packetization and SRTP. aiortc answers
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
from camgate.outputs.webrtc.ice import offered_video_codecs
from camgate.outputs.webrtc.sink import SessionCounters
from camgate.outputs.webrtc.viewer import RTP_CLOCK_HZ, ViewerEnd, ViewerQueue

TIME_BASE = fractions.Fraction(1, RTP_CLOCK_HZ)
# Browsers send receiver reports every second or so (RFC 3550 6.2, at least every 5 s).
RTCP_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 20.0  # from the answer to an ICE+DTLS connection
WATCH_INTERVAL_S = 0.5
ENDED_STATES = {"failed", "closed"}


class FrameTrack(MediaStreamTrack):
    """A video track whose frames are one viewer's queued access units, as encoded packets."""

    kind = "video"

    def __init__(self, queue: ViewerQueue, counters: SessionCounters) -> None:
        super().__init__()
        self._queue = queue
        self._counters = counters

    async def recv(self) -> av.Packet:  # type: ignore[override]
        frame = await self._queue.next()
        if frame is None:
            self.stop()
            raise MediaStreamError
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = TIME_BASE
        self._counters.bytes_sent += len(frame.data)
        return packet


def h264_preferences() -> list[Any]:
    """aiortc's H.264 codecs (and their RTX), so a browser's VP8 is never chosen."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]


class WhepSession:
    def __init__(
        self,
        camera_id: str,
        queue: ViewerQueue,
        counters: SessionCounters,
        configuration: RTCConfiguration,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.camera_id = camera_id
        self.queue = queue
        self.counters = counters
        self.pc = RTCPeerConnection(configuration)
        self.dropped = False
        self._monotonic = monotonic
        self._last_rtcp: float | None = None
        self._answered_at = monotonic()

    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to a WHEP offer: H.264 video, sent only, all candidates gathered."""
        if "H264" not in offered_video_codecs(offer_sdp):
            raise InvalidInput("the offer has no H.264 video: camgate's WebRTC sends H.264")
        # The transceiver exists before the offer is applied, so that the offer's video section
        # takes it and its codec preferences (aiortc negotiates codecs while applying).
        video = self.pc.addTransceiver(FrameTrack(self.queue, self.counters), "sendonly")
        video.setCodecPreferences(h264_preferences())
        self._watch_rtcp(video)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except (ValueError, InvalidAccessError, OperationError) as error:
            raise InvalidInput(f"the SDP offer cannot be used: {error}") from error
        for transceiver in self.pc.getTransceivers():
            if transceiver is not video:
                transceiver.direction = "inactive"  # video only: see docs/webrtc.md (audio)
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
        with contextlib.suppress(Exception):  # a half-open connection may fail to close cleanly
            await self.pc.close()
