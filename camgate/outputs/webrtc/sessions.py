"""Every WHEP session of one camgate process: opened from an offer, found by id, each watched by
one task that this registry owns, cancels and awaits (`close_all` at shutdown).

Limits: ``WEBRTC_MAX_VIEWERS`` in total here, ``WEBRTC_MAX_VIEWERS_PER_CAMERA`` in each sink,
and the free ports of ``WEBRTC_PORTS`` when it is a range (`host_ports`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aioice.ice import get_host_addresses

from camgate.config import IceServer
from camgate.errors import CapacityReached, NotFound
from camgate.outputs.webrtc.ice import announce_addresses, rtc_configuration
from camgate.outputs.webrtc.ports import HostPorts, UdpPortRange
from camgate.outputs.webrtc.session import ViewerMedia, WhepSession
from camgate.outputs.webrtc.sink import WebRtcSink
from camgate.outputs.webrtc.udp_mux import SharedUdpPort
from camgate.outputs.webrtc.viewer import ViewerEnd

log = logging.getLogger("camgate.webrtc")


@dataclass(frozen=True)
class Answer:
    session_id: str
    sdp: str


def viewer_media(sink: WebRtcSink) -> ViewerMedia:
    """A new viewer's queues on ``sink`` (raises when the camera refuses one more)."""
    video = sink.subscribe()
    audio = sink.subscribe_audio()
    if audio is None:
        return ViewerMedia(video, lambda: sink.join(video))
    return ViewerMedia(video, lambda: sink.join(video), audio, lambda: sink.join_audio(audio))


def release(sink: WebRtcSink, media: ViewerMedia) -> None:
    sink.unsubscribe(media.video)
    if media.audio is not None:
        sink.unsubscribe_audio(media.audio)


def host_ports(ports: tuple[int, int] | None, max_sessions: int) -> HostPorts | None:
    """What ``WEBRTC_PORTS`` asks for: None (ports the kernel picks), one port every session
    shares, or a range with a port per session."""
    if ports is None:
        return None
    low, high = ports
    if low == high:
        return SharedUdpPort(low)
    port_range = UdpPortRange(low, high)
    if len(port_range) < max_sessions:
        log.warning(
            "WEBRTC_PORTS (%s) has %d ports for up to %d viewers (WEBRTC_MAX_VIEWERS): "
            "viewers beyond that are refused",
            port_range,
            len(port_range),
            max_sessions,
        )
    return port_range


class WhepSessions:
    def __init__(
        self,
        max_sessions: int,
        ice_servers: Sequence[IceServer],
        addresses: Sequence[str],
        ports: tuple[int, int] | None = None,
    ) -> None:
        self.max_sessions = max_sessions
        self._ice_servers = tuple(ice_servers)
        self._addresses = tuple(addresses)
        self._ports = host_ports(ports, max_sessions)
        self._sessions: dict[str, WhepSession] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        """Bind a shared WebRTC port now, so that a port in use is logged at start-up."""
        if isinstance(self._ports, SharedUdpPort):
            await self._ports.bind(get_host_addresses(use_ipv4=True, use_ipv6=True))

    async def open(self, camera_id: str, sink: WebRtcSink, offer_sdp: str) -> Answer:
        if len(self._sessions) >= self.max_sessions:
            raise CapacityReached(
                f"{self.max_sessions} WebRTC viewers are connected (WEBRTC_MAX_VIEWERS)",
                retry_after_s=10,
            )
        media = viewer_media(sink)
        configuration = rtc_configuration(self._ice_servers)
        session = WhepSession(camera_id, media, sink.counters, configuration, ports=self._ports)
        self._sessions[session.id] = session  # counted at once: concurrent offers see the limit
        try:
            sdp = await session.answer(offer_sdp)
        except BaseException:
            self._sessions.pop(session.id, None)
            release(sink, media)
            await session.close()
            raise
        self._tasks[session.id] = asyncio.create_task(self._run(session, sink))
        return Answer(session.id, announce_addresses(sdp, self._addresses))

    async def _run(self, session: WhepSession, sink: WebRtcSink) -> None:
        try:
            reason = await session.watch()
            log.info("webrtc session of %s ended: %s", session.camera_id, reason)
            if session.dropped:
                sink.counters.sessions_dropped += 1
        finally:
            self._sessions.pop(session.id, None)
            self._tasks.pop(session.id, None)
            release(sink, session.media)
            await session.close()

    def get(self, camera_id: str, session_id: str) -> WhepSession:
        session = self._sessions.get(session_id)
        if session is None or session.camera_id != camera_id:
            raise NotFound(f"no WebRTC session {session_id} for camera {camera_id}")
        return session

    async def close(self, camera_id: str, session_id: str) -> None:
        """End a session (WHEP DELETE) and wait until it is gone."""
        session = self.get(camera_id, session_id)
        session.queue.finish(ViewerEnd.CLOSED)
        task = self._tasks.get(session_id)
        if task is not None:
            await asyncio.shield(task)

    async def close_all(self) -> None:
        tasks = list(self._tasks.values())
        for session in list(self._sessions.values()):
            session.queue.finish(ViewerEnd.CLOSED)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._ports is not None:
            self._ports.close()
