"""ICE settings turned into what aiortc and the SDP answer need. Pure functions, no sockets.

aiortc gathers host candidates on every interface of this machine (aioice binds an ephemeral
UDP port per session and interface); behind a 1:1 NAT the public address is announced as well,
with the same ports (`announce_addresses`), the way MediaMTX's additional hosts work.
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


def offered_video_codecs(sdp: str) -> set[str]:
    """Upper-case names of the video codecs an offer lists (a=rtpmap in its m=video sections)."""
    codecs: set[str] = set()
    in_video = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_video = line.startswith("m=video")
        elif in_video and line.startswith("a=rtpmap:"):
            name = line.split(" ", 1)[1].split("/")[0] if " " in line else ""
            codecs.add(name.upper())
    return codecs
