"""ICE settings turned into what aiortc and the SDP answer need. Pure functions, no sockets.

aiortc gathers host candidates on every interface of this machine (a UDP port per session: one
the kernel picks, or one of ``WEBRTC_PORTS``, see `camgate.outputs.webrtc.ports`); behind a
1:1 NAT the public address is announced as well, with the same ports (`announce_addresses`),
the way MediaMTX's additional hosts work.

A browser hides its own addresses behind mDNS names (`<uuid>.local`). aioice resolves each one
while the offer is applied and waits up to a second for an answer that, on most networks, never
comes; `without_mdns_candidates` drops them, since the browser's connectivity checks reveal its
address as a peer-reflexive candidate anyway (RFC 8445 7.3.1.3).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiortc import RTCConfiguration, RTCIceServer

from camgate.config import IceServer

# RFC 8445 5.1.2.1: host candidates get type preference 126; ours keep it and sit just below the
# real interface (local preference one lower) so a client on the LAN prefers the direct path.
ANNOUNCED_PRIORITY_STEP = 256


def rtc_configuration(servers: Sequence[IceServer]) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in servers
        ]
    )


def split_addresses(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def announce_addresses(sdp: str, addresses: Sequence[str]) -> str:
    """``sdp`` with each IPv4 host candidate repeated once per address in ``addresses``."""
    if not addresses:
        return sdp
    lines: list[str] = []
    for line in sdp.splitlines():
        lines.append(line)
        fields = line.split()
        if not line.startswith("a=candidate:") or fields[7:8] != ["host"] or ":" in fields[4]:
            continue
        for index, address in enumerate(addresses):
            if address == fields[4]:
                continue
            foundation = f"{fields[0].removeprefix('a=candidate:')}x{index}"
            priority = max(int(fields[3]) - ANNOUNCED_PRIORITY_STEP * (index + 1), 1)
            copy = [f"a=candidate:{foundation}", *fields[1:3], str(priority), address, *fields[5:]]
            lines.append(" ".join(copy))
    return "\r\n".join(lines) + "\r\n"


def without_mdns_candidates(sdp: str) -> str:
    """``sdp`` without candidates named by an mDNS host name (and without end-of-candidates when
    it dropped one, so that ICE keeps waiting for the peer-reflexive candidate)."""
    lines = sdp.splitlines()
    kept = [line for line in lines if not _is_mdns_candidate(line)]
    if len(kept) == len(lines):
        return sdp
    kept = [line for line in kept if line != "a=end-of-candidates"]
    return "\r\n".join(kept) + "\r\n"


def _is_mdns_candidate(line: str) -> bool:
    fields = line.split()
    return line.startswith("a=candidate:") and len(fields) > 4 and fields[4].endswith(".local")


def offered_codecs(sdp: str, kind: str = "video") -> set[str]:
    """Upper-case names of the codecs an offer lists (a=rtpmap) in its m=``kind`` sections."""
    codecs: set[str] = set()
    in_kind = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_kind = line.startswith(f"m={kind}")
        elif in_kind and line.startswith("a=rtpmap:"):
            name = line.split(" ", 1)[1].split("/")[0] if " " in line else ""
            codecs.add(name.upper())
    return codecs
