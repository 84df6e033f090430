"""WebRTC behind a firewall: with ``WEBRTC_PORTS`` every UDP port a viewer is told to reach is in
the range (host candidates and the STUN server's view of them), the viewer decodes the camera
through it, a full range refuses the next viewer with a 503 naming the setting, and a session's
port serves the next viewer once it ends. With one port, every viewer shares it.

A real camera and camgate server, a real STUN server (tests/support/stun.py) and aiortc as the
viewer (tests/support/whep.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

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
SHARING_VIEWERS = 3
ADMIN = "admin-3f6a9c1e7b2d4f80"


@pytest.fixture(scope="module")
def stun() -> Iterator[StunServer]:
    with StunServer(free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def ports() -> tuple[int, int]:
    return free_udp_range(PORTS)


@pytest.fixture(scope="module")
def camera() -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), gop_s=2.0, audio="pcma") as camera:
        yield camera


def serving(
    camera: RtspCamera, data_dir: Path, stun: StunServer, ports: str
) -> contextlib.AbstractContextManager[CamgateServer]:
    env = {
        "CAMGATE_API_TOKENS": f"admin:{ADMIN}",
        "WEBRTC_PORTS": ports,
        "WEBRTC_ICE_SERVERS": json.dumps([{"urls": stun.url}]),
    }
    return CamgateServer(free_port(), data_dir, env)


@contextlib.contextmanager
def streaming(server: CamgateServer, camera: RtspCamera) -> Iterator[CamgateServer]:
    server.client.headers["Authorization"] = f"Bearer {ADMIN}"
    reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
    assert reply.status_code == 200, reply.text
    server.wait_state(CAMERA_ID, {"running"}, RUNNING_TIMEOUT_S)
    yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    camera: RtspCamera,
    stun: StunServer,
    ports: tuple[int, int],
) -> Iterator[CamgateServer]:
    data_dir = tmp_path_factory.mktemp("webrtc-ports") / "data"
    with (
        serving(camera, data_dir, stun, f"{ports[0]}-{ports[1]}") as server,
        streaming(server, camera),
    ):
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


async def test_with_one_port_every_viewer_shares_it(
    tmp_path: Path, camera: RtspCamera, stun: StunServer
) -> None:
    (port, _) = free_udp_range(1)
    with serving(camera, tmp_path / "data", stun, str(port)) as server, streaming(server, camera):
        async with admin_client(server) as client, contextlib.AsyncExitStack() as stack:
            watching = [
                await stack.enter_async_context(whep_viewer(client, CAMERA_ID, audio=True))
                for _ in range(SHARING_VIEWERS)
            ]
            decoded = await asyncio.gather(*(viewer.frames(10) for viewer in watching))
            assert all({(f.width, f.height) for f in frames} == {(640, 360)} for frames in decoded)
            for viewer in watching:
                offered = candidates(viewer.pc.remoteDescription.sdp)
                assert {kind for kind, _, _ in offered} >= {"host", "srflx"}, offered
                assert {p for _, _, p in offered} == {port}, offered
                heard = await viewer.listen(0.2)
                assert heard[0] == 48_000 and max(heard[1]) > 1000  # each hears its own audio
            assert (await client.delete(watching[0].location)).status_code == 200
            later = await stack.enter_async_context(whep_viewer(client, CAMERA_ID))
            assert (await later.frames(5))[0].width == 640
            await asyncio.gather(*(viewer.frames(5) for viewer in watching[1:]))
