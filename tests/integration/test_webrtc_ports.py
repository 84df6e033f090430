"""WebRTC behind a firewall: with ``WEBRTC_PORTS`` every UDP port a viewer is told to reach is in
the range (host candidates and the STUN server's view of them), the viewer decodes the camera
through it, a full range refuses the next viewer with a 503 naming the setting, and a session's
port serves the next viewer once it ends.

A real camera and camgate server, a real STUN server (tests/support/stun.py) and aiortc as the
viewer (tests/support/whep.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest
from aiortc import RTCPeerConnection

from tests.support.camera import RtspCamera
from tests.support.ports import free_port, free_udp_range
from tests.support.server import CamgateServer, wait_for
from tests.support.stun import StunServer
from tests.support.whep import offer_sdp, post_offer, whep_viewer

pytestmark = pytest.mark.integration

CAMERA_ID = "webrtc-ports"
RUNNING_TIMEOUT_S = 40.0
PORTS = 2
ADMIN = "admin-3f6a9c1e7b2d4f80"


@pytest.fixture(scope="module")
def stun() -> Iterator[StunServer]:
    with StunServer(free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def ports() -> tuple[int, int]:
    return free_udp_range(PORTS)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, stun: StunServer, ports: tuple[int, int]
) -> Iterator[CamgateServer]:
    data_dir = tmp_path_factory.mktemp("webrtc-ports") / "data"
    env = {
        "CAMGATE_API_TOKENS": f"admin:{ADMIN}",
        "WEBRTC_PORTS": f"{ports[0]}-{ports[1]}",
        "WEBRTC_ICE_SERVERS": json.dumps([{"urls": stun.url}]),
    }
    with (
        RtspCamera(port=free_port(), gop_s=2.0, audio="pcma") as camera,
        CamgateServer(free_port(), data_dir, env) as server,
    ):
        server.client.headers["Authorization"] = f"Bearer {ADMIN}"
        reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
        assert reply.status_code == 200, reply.text
        server.wait_state(CAMERA_ID, {"running"}, RUNNING_TIMEOUT_S)
        yield server


def admin_client(server: CamgateServer) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    return httpx.AsyncClient(base_url=server.base_url, timeout=20, headers=headers)


def candidates(sdp: str) -> list[tuple[str, str, int]]:
    """(type, address, port) of every candidate in an SDP."""
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            found.append((fields[7], fields[4], int(fields[5])))
    return found


def viewers(server: CamgateServer) -> int:
    return int(server.status(CAMERA_ID)["outputs"]["webrtc"]["viewers"])


async def test_viewers_reach_the_camera_on_ports_of_the_range_until_it_is_full(
    server: CamgateServer, stun: StunServer, ports: tuple[int, int]
) -> None:
    low, high = ports
    async with admin_client(server) as client, contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(whep_viewer(client, CAMERA_ID, audio=True))
        frames = await first.frames(10)
        assert {(f.width, f.height) for f in frames} == {(640, 360)}
        offered = candidates(first.pc.remoteDescription.sdp)
        assert {kind for kind, _, _ in offered} >= {"host", "srflx"}, offered
        assert all(low <= port <= high for _, _, port in offered), (offered, ports)
        # Video and audio share one port per address (bundle): the range holds two viewers.
        assert len({port for _, _, port in offered}) == 1, offered
        assert stun.seen and all(low <= port <= high for _, port in stun.seen), stun.seen

        second = await stack.enter_async_context(whep_viewer(client, CAMERA_ID))
        await second.frames(5)
        assert {port for _, _, port in candidates(second.pc.remoteDescription.sdp)} == {
            port for port in range(low, high + 1) if port not in {p for _, _, p in offered}
        }

        pc = RTCPeerConnection()
        try:
            refused = await post_offer(client, CAMERA_ID, await offer_sdp(pc))
        finally:
            await pc.close()
        assert refused.status_code == 503, refused.text
        assert "WEBRTC_PORTS" in refused.text and refused.headers.get("retry-after")
        assert viewers(server) == 2  # the refused offer left nothing behind

        assert (await client.delete(first.location)).status_code == 200
        third = await stack.enter_async_context(whep_viewer(client, CAMERA_ID))
        assert (await third.frames(5))[0].width == 640
        assert {port for _, _, port in candidates(third.pc.remoteDescription.sdp)} == {
            port for _, _, port in offered
        }
        for viewer in (second, third):
            assert (await client.delete(viewer.location)).status_code == 200
    wait_for(lambda: viewers(server) == 0, 30, "no viewers")
