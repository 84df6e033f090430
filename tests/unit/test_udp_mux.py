"""One UDP port for every WebRTC session: ICE agents (real aioice, as aiortc uses them) connect
to sessions whose host candidates share one port, and each session gets its own peer's data,
also when two sessions' username fragments collide. Real UDP on this machine's addresses."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from aioice import Connection, stun

from camgate.outputs.webrtc.ports import fix_ports
from camgate.outputs.webrtc.udp_mux import SharedUdpPort
from tests.support.ports import free_udp_range

CONNECT_TIMEOUT_S = 10.0


@pytest.fixture
async def shared() -> AsyncIterator[SharedUdpPort]:
    port, _ = free_udp_range(1)
    shared = SharedUdpPort(port)
    yield shared
    shared.close()


async def connect(shared: SharedUdpPort, **server_options: str) -> tuple[Connection, Connection]:
    """(server agent on the shared port, its peer), connected."""
    server = Connection(ice_controlling=False, **server_options)
    fix_ports(server, shared)
    client = Connection(ice_controlling=True)
    await asyncio.gather(server.gather_candidates(), client.gather_candidates())
    for agent, other in ((server, client), (client, server)):
        for candidate in other.local_candidates:
            await agent.add_remote_candidate(candidate)
        await agent.add_remote_candidate(None)
        agent.remote_username, agent.remote_password = other.local_username, other.local_password
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await asyncio.gather(server.connect(), client.connect())
    return server, client


async def exchange(server: Connection, client: Connection, text: bytes) -> None:
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await client.send(text)
        assert await server.recv() == text
        await server.send(text[::-1])
        assert await client.recv() == text[::-1]


async def test_sessions_on_one_port_each_get_their_own_peer(shared: SharedUdpPort) -> None:
    first = await connect(shared)
    second = await connect(shared)
    try:
        for server, _ in (first, second):
            hosts = [c for c in server.local_candidates if c.type == "host"]
            assert hosts and {c.port for c in hosts} == {shared.port}, hosts
        assert shared.sessions() == 2
        for _ in range(3):  # interleaved: neither sees the other's datagrams
            await exchange(*first, b"first")
            await exchange(*second, b"second")

        await first[0].close()
        assert shared.sessions() == 1
        await exchange(*second, b"still here")  # the port stays, the other session goes on
    finally:
        for agent in (*first, *second):
            await agent.close()
    assert shared.sessions() == 0


async def test_two_sessions_with_the_same_username_fragment_are_told_apart(
    shared: SharedUdpPort,
) -> None:
    first = await connect(shared, local_username="same")
    second = await connect(shared, local_username="same")
    try:
        await exchange(*first, b"first")
        await exchange(*second, b"second")
        await exchange(*first, b"first again")
    finally:
        for agent in (*first, *second):
            await agent.close()


async def test_a_port_in_use_refuses_the_session_with_the_setting_named(
    shared: SharedUdpPort,
) -> None:
    blocker = SharedUdpPort(shared.port)
    server = await connect(shared)
    try:
        agent = Connection(ice_controlling=False)
        fix_ports(agent, blocker)
        with pytest.raises(Exception, match="WEBRTC_PORTS"):
            await agent.gather_candidates()
        await agent.close()
    finally:
        for one in server:
            await one.close()
        blocker.close()


async def test_a_check_not_signed_with_the_sessions_password_makes_no_peer(
    shared: SharedUdpPort,
) -> None:
    server, client = await connect(shared)
    rogue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        host = next(c for c in server.local_candidates if c.type == "host" and ":" not in c.host)
        forged = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        forged.attributes["USERNAME"] = f"{server.local_username}:{client.local_username}"
        forged.add_message_integrity(b"not the password")
        rogue.sendto(bytes(forged), (host.host, host.port))
        rogue.sendto(b"\x17 not from the peer", (host.host, host.port))
        await exchange(server, client, b"only the peer's")  # the rogue datagram never arrived
    finally:
        rogue.close()
        await server.close()
        await client.close()
