"""WebRTC over WHEP as a client sees it, from a real test camera through a real camgate server.

The client is aiortc, as a browser would be: it offers to receive video, POSTs the offer to
``/whep/<id>``, connects over ICE/DTLS and decodes (PyAV, inside aiortc) the H.264 it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import av
import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.support.camera import RtspCamera
from tests.support.server import CamgateServer, ffmpeg_pids, streaming_server, wait_for

pytestmark = pytest.mark.integration

CAMERA_ID = "webrtc-cam"
RUNNING_TIMEOUT_S = 40.0
FRAME_TIMEOUT_S = 15.0
ADMIN = "admin-7d3e1f9a2b4c6e8d"
VIEWERS = 10


def running_server(
    make_server: Callable[..., CamgateServer], camera: RtspCamera, **env: str
) -> CamgateServer:
    token = ADMIN if "CAMGATE_API_TOKENS" in env else None
    return streaming_server(make_server, camera.url, CAMERA_ID, token, RUNNING_TIMEOUT_S, **env)


@dataclass
class WhepViewer:
    pc: RTCPeerConnection
    location: str
    track: MediaStreamTrack

    async def frames(self, count: int) -> list[av.VideoFrame]:
        """The next ``count`` decoded pictures."""
        out = []
        async with asyncio.timeout(FRAME_TIMEOUT_S):
            while len(out) < count:
                frame = await self.track.recv()
                assert isinstance(frame, av.VideoFrame)
                out.append(frame)
        return out


async def offer_sdp(pc: RTCPeerConnection) -> str:
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers before returning
    return pc.localDescription.sdp


async def post_offer(
    client: httpx.AsyncClient, camera_id: str, sdp: str, query: str = ""
) -> httpx.Response:
    url = f"/whep/{camera_id}" + (f"?{query}" if query else "")
    return await client.post(url, content=sdp, headers={"Content-Type": "application/sdp"})


@contextlib.asynccontextmanager
async def whep_viewer(
    client: httpx.AsyncClient, camera_id: str = CAMERA_ID, query: str = ""
) -> AsyncIterator[WhepViewer]:
    pc = RTCPeerConnection()
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    try:
        reply = await post_offer(client, camera_id, await offer_sdp(pc), query)
        assert reply.status_code == 201, reply.text
        assert reply.headers["content-type"].startswith("application/sdp")
        await pc.setRemoteDescription(RTCSessionDescription(reply.text, "answer"))
        track = await asyncio.wait_for(tracks.get(), FRAME_TIMEOUT_S)
        yield WhepViewer(pc, reply.headers["location"], track)
    finally:
        await pc.close()


def webrtc_stats(server: CamgateServer) -> dict[str, int]:
    stats: dict[str, int] = server.status(CAMERA_ID)["outputs"]["webrtc"]
    return stats


async def test_a_whep_viewer_decodes_the_cameras_picture_until_it_deletes_the_session(
    make_server: Callable[..., CamgateServer], camera: RtspCamera
) -> None:
    server = running_server(make_server, camera)
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=20) as client,
        whep_viewer(client) as viewer,
    ):
        frames = await viewer.frames(50)  # two seconds at 25 fps
        assert {(f.width, f.height) for f in frames} == {(640, 360)}
        assert webrtc_stats(server)["viewers"] == 1
        assert viewer.location.startswith(f"/whep/{CAMERA_ID}/")

        ended = await client.delete(viewer.location)
        assert ended.status_code == 200
        assert webrtc_stats(server)["viewers"] == 0
        assert (await client.delete(viewer.location)).status_code == 404
    stats = webrtc_stats(server)
    assert stats["bytesSent"] > 0 and stats["sessionsDropped"] == 0


async def test_ten_viewers_of_one_camera_cost_one_ingest(
    make_server: Callable[..., CamgateServer], camera: RtspCamera
) -> None:
    server = running_server(make_server, camera)
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
        contextlib.AsyncExitStack() as stack,
    ):
        viewers = [await stack.enter_async_context(whep_viewer(client)) for _ in range(VIEWERS)]
        decoded = await asyncio.gather(*(viewer.frames(10) for viewer in viewers))
        assert all({(f.width, f.height) for f in frames} == {(640, 360)} for frames in decoded)
        assert webrtc_stats(server)["viewers"] == VIEWERS
        assert server.process is not None
        assert len(ffmpeg_pids(server.process.pid, CAMERA_ID)) == 1


async def test_a_viewer_that_disappears_is_dropped(
    make_server: Callable[..., CamgateServer], camera: RtspCamera
) -> None:
    server = running_server(make_server, camera)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as client:
        async with whep_viewer(client) as viewer:
            await viewer.frames(5)
        # pc.close() sent no DELETE: the server notices (DTLS close or no RTCP) on its own.
        wait_for(lambda: webrtc_stats(server)["viewers"] == 0, 30, "the session to be dropped")


async def test_whep_needs_a_token_or_a_signed_viewer_url(
    make_server: Callable[..., CamgateServer], camera: RtspCamera
) -> None:
    server = running_server(make_server, camera, CAMGATE_API_TOKENS=f"admin:{ADMIN}")
    issued = server.client.post(f"/api/cameras/{CAMERA_ID}/viewer-url", json={"ttlSeconds": 60})
    signed = issued.json()["data"]["hls"].split("?", 1)[1]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as anonymous:
        pc = RTCPeerConnection()
        try:
            refused = await post_offer(anonymous, CAMERA_ID, await offer_sdp(pc))
        finally:
            await pc.close()
        assert refused.status_code == 401

        async with whep_viewer(anonymous, query=signed) as viewer:
            assert (await viewer.frames(5))[0].width == 640
            assert viewer.location.endswith(f"?{signed}")
            assert (await anonymous.delete(viewer.location)).status_code == 200
