"""Every WebRTC session on one UDP port (``WEBRTC_PORTS=8555``): ICE multiplexing.

aioice reads each socket for one session. `SharedUdpPort` owns one socket per address of this
machine on the one port and gives each session a `SessionTransport` (aioice's protocol sends
through it as through a socket of its own); `UdpDemux` hands each datagram that arrives to the
session it belongs to (RFC 8445 keeps this possible: every connectivity check names its target):

- a STUN request (a connectivity check) names the session by the first half of its USERNAME,
  our ICE username fragment, and must carry a MESSAGE-INTEGRITY keyed by that session's ICE
  password (which also tells apart two sessions whose 4-character fragments collide); the
  sender's address is then that session's peer, and other requests are dropped;
- a STUN response (to our own check, or from the STUN server) goes to the session that has the
  transaction open;
- anything else (DTLS, SRTP, SRTCP) goes to the session whose peer sent it.

A session's peers and fragment are forgotten when it closes. The sockets stay bound until
shutdown; they are bound at the first session, or at start-up (`bind`) so that a port in use is
reported at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, cast

from aioice import Connection, stun
from aioice.ice import StunProtocol

from camgate.errors import CapacityReached
from camgate.outputs.webrtc.ports import bound_udp_socket

log = logging.getLogger("camgate.webrtc")

Address = tuple[str, int]


class UdpDemux(asyncio.DatagramProtocol):
    """One shared socket: its sessions, by ICE username fragment and by peer address."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.sockname: Address = ("", 0)
        self._by_fragment: dict[str, list[StunProtocol]] = {}
        self._by_peer: dict[Address, StunProtocol] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        name = transport.get_extra_info("sockname")
        self.sockname = (name[0], name[1])

    def add(self, protocol: StunProtocol) -> None:
        fragment = protocol.receiver.local_username
        self._by_fragment.setdefault(fragment, []).append(protocol)

    def remove(self, protocol: StunProtocol) -> None:
        fragment = protocol.receiver.local_username
        sharing = self._by_fragment.get(fragment, [])
        if protocol in sharing:
            sharing.remove(protocol)
        if not sharing:
            self._by_fragment.pop(fragment, None)
        for peer in [peer for peer, known in self._by_peer.items() if known is protocol]:
            del self._by_peer[peer]

    def __len__(self) -> int:
        return sum(len(sharing) for sharing in self._by_fragment.values())

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        peer = (addr[0], addr[1])
        protocol = self._route(data, peer)
        if protocol is not None:
            protocol.datagram_received(data, peer)

    def _route(self, data: bytes, peer: Address) -> StunProtocol | None:
        # RFC 7983: a first byte of 0-3 is STUN; DTLS and (S)RTP start higher.
        if data and data[0] < 4:
            try:
                message = stun.parse_message(data)
            except ValueError:
                return None
            if message.message_class == stun.Class.REQUEST:
                protocol = self._session_checked(message)
                if protocol is not None:
                    self._by_peer[peer] = protocol
                return protocol
            return self._session_waiting_for(message.transaction_id)
        return self._by_peer.get(peer)

    def _session_checked(self, message: stun.Message) -> StunProtocol | None:
        username = message.attributes.get("USERNAME")
        if not isinstance(username, str):
            return None
        # Only a check signed with the session's ICE password makes its sender a peer.
        for protocol in self._by_fragment.get(username.partition(":")[0], []):
            if message.check_message_integrity(protocol.receiver.local_password.encode()):
                return protocol
        return None

    def _session_waiting_for(self, transaction_id: bytes) -> StunProtocol | None:
        for sharing in self._by_fragment.values():
            for protocol in sharing:
                if transaction_id in protocol.transactions:
                    return protocol
        return None

    def error_received(self, exc: Exception) -> None:
        log.debug("webrtc: shared UDP socket %s: %s", self.sockname, exc)


class SessionTransport(asyncio.DatagramTransport):
    """What one session's aioice protocol sends through: the shared socket, under its name."""

    def __init__(self, demux: UdpDemux, protocol: StunProtocol) -> None:
        super().__init__()
        self._demux = demux
        self._protocol = protocol
        self._closing = False

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not self._closing and self._demux.transport is not None:
            self._demux.transport.sendto(data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._demux.sockname
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._demux.remove(self._protocol)
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


class SharedUdpPort:
    """``port`` on every address, shared by all sessions (see the module's description)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._demuxes: dict[str, UdpDemux] = {}

    def __str__(self) -> str:
        return str(self.port)

    async def bind(self, addresses: Sequence[str]) -> None:
        """Bind the port on each address not bound yet; log the ones that fail."""
        loop = asyncio.get_running_loop()
        for address in addresses:
            if address in self._demuxes:
                continue
            try:
                sock = bound_udp_socket(address, self.port)
            except OSError as error:
                log.error(
                    "webrtc: cannot bind UDP %s port %d (WEBRTC_PORTS): %s",
                    address,
                    self.port,
                    error,
                )
                continue
            _, demux = await loop.create_datagram_endpoint(UdpDemux, sock=sock)
            self._demuxes[address] = demux

    async def open(self, connection: Connection, addresses: Sequence[str]) -> list[StunProtocol]:
        await self.bind(addresses)
        protocols = []
        for address in addresses:
            demux = self._demuxes.get(address)
            if demux is None:
                continue
            protocol = StunProtocol(connection)
            protocol.connection_made(SessionTransport(demux, protocol))
            demux.add(protocol)
            protocols.append(protocol)
        if addresses and not protocols:
            raise CapacityReached(
                f"UDP port {self.port} (WEBRTC_PORTS) cannot be bound on this machine",
                retry_after_s=30,
            )
        return protocols

    def sessions(self) -> int:
        """Sessions on the busiest address (each session is on every address)."""
        return max((len(demux) for demux in self._demuxes.values()), default=0)

    def close(self) -> None:
        for demux in self._demuxes.values():
            if demux.transport is not None:
                demux.transport.close()
        self._demuxes.clear()
