"""Fixed UDP ports for WebRTC sessions (``WEBRTC_PORTS``), for firewalls.

aioice, aiortc's ICE agent, binds a session's host candidates to ports the kernel picks and has
no setting for it. `use_host_ports` turns the ICE agents of one peer connection, before they
gather, into `FixedPortConnection`s, whose host candidates come from a `HostPorts`:

- `UdpPortRange` (``WEBRTC_PORTS=50000-50100``): a free port of the range per session, the same
  port on every address of this machine (video and audio share it: bundle), given back when the
  session closes; when none is free, gathering raises `CapacityReached` (503);
- `SharedUdpPort` (``WEBRTC_PORTS=8555``, `camgate.outputs.webrtc.udp_mux`): one port for all.

Server-reflexive (STUN) candidates come from those same sockets; TURN relays are aioice's own.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aioice import Candidate, Connection
from aioice.ice import (
    StunProtocol,
    candidate_foundation,
    candidate_priority,
    server_reflexive_candidate,
)
from aioice.turn import UDP_SOCKET_BUFFER_SIZE
from aiortc import RTCPeerConnection

from camgate.errors import CapacityReached
from camgate.tasks import cancel_and_wait

log = logging.getLogger("camgate.webrtc")

STUN_TIMEOUT_S = 5.0


@dataclass
class UdpPortRange:
    """Ports ``low``..``high`` (both included); hands them out in turn, so a port just given
    back is the last to be taken again (late packets of an ended session find no one)."""

    low: int
    high: int
    _next: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high <= 65535:
            raise ValueError(f"not a UDP port range: {self.low}-{self.high}")
        self._next = self.low

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def __len__(self) -> int:
        return self.high - self.low + 1

    def _in_turn(self) -> Iterable[int]:
        start = self._next
        for offset in range(len(self)):
            yield self.low + (start - self.low + offset) % len(self)

    def bind(self, addresses: Sequence[str]) -> list[socket.socket]:
        """UDP sockets on each of ``addresses`` that can be bound, all on the next port of the
        range free on every one of them (so the range holds as many sessions as it has ports,
        however many addresses this machine has).

        Raises `CapacityReached` when no port is free on all of them."""
        if not addresses:
            return []
        usable = list(addresses)
        for port in self._in_turn():
            bound: list[socket.socket] = []
            for address in list(usable):
                try:
                    bound.append(bound_udp_socket(address, port))
                except OSError as error:
                    if error.errno == errno.EADDRINUSE:
                        break
                    log.info("webrtc: cannot bind %s: %s", address, error)
                    usable.remove(address)
            else:
                self._next = self.low + (port + 1 - self.low) % len(self)
                return bound
            for sock in bound:
                sock.close()
        raise CapacityReached(
            f"every UDP port of WEBRTC_PORTS ({self}) is in use", retry_after_s=10
        )

    async def open(self, connection: Connection, addresses: Sequence[str]) -> list[StunProtocol]:
        loop = asyncio.get_running_loop()
        protocols = []
        for sock in self.bind(addresses):
            _, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), sock=sock
            )
            protocols.append(protocol)
        return protocols

    def close(self) -> None:
        """Nothing shared: each session's sockets close with it."""


def bound_udp_socket(address: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``address`` and ``port`` with aioice's receive buffer
    (OSError when it cannot be bound)."""
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_SOCKET_BUFFER_SIZE)
    return sock


class HostPorts(Protocol):
    """Where a session's host candidates live: `UdpPortRange` or `SharedUdpPort`."""

    async def open(self, connection: Connection, addresses: Sequence[str]) -> list[StunProtocol]:
        """One protocol of ``connection`` per address, its transport ready to send."""
        ...

    def close(self) -> None:
        """Let go of what all sessions share (at shutdown)."""
        ...


class FixedPortConnection(Connection):
    """aioice's ICE agent with its host candidates on ``host_ports``."""

    host_ports: HostPorts

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        hosts = await self.host_ports.open(self, addresses)
        for protocol in hosts:
            protocol.local_candidate = host_candidate(
                component, protocol.transport.get_extra_info("sockname")
            )
        self._protocols += hosts
        candidates = [protocol.local_candidate for protocol in hosts]
        candidates += await self._reflexive_candidates(hosts)
        # Nothing left for aioice's own gathering but the TURN relay, if one is configured.
        return candidates + await super().get_component_candidates(component, [], timeout)

    async def _reflexive_candidates(self, hosts: list[StunProtocol]) -> list[Candidate]:
        """What the STUN server sees of each IPv4 host socket (none without a STUN server)."""
        if self.stun_server is None:
            return []
        queries = [
            asyncio.ensure_future(server_reflexive_candidate(protocol, self.stun_server))
            for protocol in hosts
            if ipaddress.ip_address(protocol.local_candidate.host).version == 4
        ]
        if not queries:
            return []
        done, pending = await asyncio.wait(queries, timeout=STUN_TIMEOUT_S)
        if pending:
            log.info("webrtc: no STUN answer within %gs", STUN_TIMEOUT_S)
            await cancel_and_wait(pending)
        return [query.result()[0] for query in done if query.exception() is None]


def host_candidate(component: int, sockname: tuple[str, int]) -> Candidate:
    host, port = sockname[0], sockname[1]
    return Candidate(
        foundation=candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=candidate_priority(component, "host"),
        host=host,
        port=port,
        type="host",
    )


def use_host_ports(pc: RTCPeerConnection, host_ports: HostPorts) -> None:
    """Make the ICE agents of ``pc`` gather on ``host_ports``: call after the offer is applied
    (bundling has then dropped the agents that will not be used) and before the answer is set."""
    for transceiver in pc.getTransceivers():
        fix_ports(transceiver.sender.transport.transport.iceGatherer._connection, host_ports)


def fix_ports(connection: Connection, host_ports: HostPorts) -> None:
    """Make one aioice agent, before it gathers, a `FixedPortConnection` on ``host_ports``."""
    if isinstance(connection, FixedPortConnection):
        return
    if type(connection) is not Connection:
        raise TypeError(f"unexpected ICE agent {type(connection).__name__}")
    connection.__class__ = FixedPortConnection
    assert isinstance(connection, FixedPortConnection)
    connection.host_ports = host_ports
