"""WEBRTC_PORTS: a session's UDP sockets come from the range, one port on every address, in
turn, and a full range refuses a viewer clearly. Real sockets on loopback addresses; ports from
a range this test found free."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from camgate.errors import CapacityReached
from camgate.outputs.webrtc.ports import UdpPortRange
from tests.support.ports import free_udp_range

LOOPBACK = "127.0.0.1"
SECOND = "127.0.0.2"  # Linux answers for all of 127.0.0.0/8: a second address of this machine
ELSEWHERE = "203.0.113.1"  # TEST-NET-3: not an address of this machine


@pytest.fixture
def span() -> tuple[int, int]:
    return free_udp_range(3)


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def ports_of(sockets: list[socket.socket]) -> list[tuple[str, int]]:
    return [sock.getsockname() for sock in sockets]


def test_ports_are_handed_out_in_turn_and_reused_last(
    span: tuple[int, int], held: list[socket.socket]
) -> None:
    low, high = span
    ports = UdpPortRange(low, high)
    first = ports.bind([LOOPBACK])
    held += first
    assert ports_of(first) == [(LOOPBACK, low)]
    first[0].close()  # given back at once, yet the next session takes the next port
    held += (second := ports.bind([LOOPBACK])) + (third := ports.bind([LOOPBACK]))
    assert ports_of(second + third) == [(LOOPBACK, low + 1), (LOOPBACK, low + 2)]
    held += (again := ports.bind([LOOPBACK]))
    assert ports_of(again) == [(LOOPBACK, low)]  # the one free port, after going round
    assert not again[0].getblocking()  # ready for the event loop


def test_a_session_has_one_port_on_every_address(
    span: tuple[int, int], held: list[socket.socket]
) -> None:
    low, high = span
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind((SECOND, low))  # something else holds the first port on one address only
    held.append(other)
    held += (bound := UdpPortRange(low, high).bind([LOOPBACK, ELSEWHERE, SECOND]))
    assert ports_of(bound) == [(LOOPBACK, low + 1), (SECOND, low + 1)]  # ELSEWHERE is skipped


def test_a_full_range_refuses_with_the_setting_named(
    span: tuple[int, int], held: list[socket.socket]
) -> None:
    low, high = span
    ports = UdpPortRange(low, high)
    for _ in range(3):
        held += ports.bind([LOOPBACK, SECOND])
    with pytest.raises(CapacityReached) as refused:
        ports.bind([LOOPBACK, SECOND])
    assert "WEBRTC_PORTS" in str(refused.value) and f"{low}-{high}" in str(refused.value)
    for sock in held[:2]:
        sock.close()
    held += (reused := ports.bind([LOOPBACK, SECOND]))
    assert ports_of(reused) == [(LOOPBACK, low), (SECOND, low)]


def test_no_address_no_socket(span: tuple[int, int]) -> None:
    assert UdpPortRange(*span).bind([]) == []
    assert UdpPortRange(*span).bind([ELSEWHERE]) == []


@pytest.mark.parametrize(("low", "high"), [(0, 10), (10, 9), (65535, 65536)])
def test_a_range_must_be_ports(low: int, high: int) -> None:
    with pytest.raises(ValueError):
        UdpPortRange(low, high)
