"""WebRTC over WHEP as a client sees it, from a real test camera through a real camgate server.

The client is aiortc, as a browser would be (tests/support/whep.py). One server with two cameras
serves the module: a G.711 one and an AAC one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator

import httpx
import pytest
from aiortc import RTCPeerConnection

from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer, ffmpeg_cmdlines, ffmpeg_pids, wait_for
from tests.support.whep import offer_sdp, post_offer, whep_viewer

pytestmark = pytest.mark.integration

CAMERA_ID = "webrtc-cam"  # a G.711 (PCMA) camera, as many are; FFmpeg makes AAC of its audio
AAC_CAMERA_ID = "webrtc-aac"
RUNNING_TIMEOUT_S = 40.0
ADMIN = "admin-7d3e1f9a2b4c6e8d"
VIEWERS = 10
TONE_HZ = 440  # the test camera's tone (tests/support/rtsp_camera.py)
LISTEN_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CamgateServer]:
    """One server for the module (starting one costs seconds): a G.711 and an AAC camera."""
    data_dir = tmp_path_factory.mktemp("webrtc") / "data"
    env = {"CAMGATE_API_TOKENS": f"admin:{ADMIN}"}
    with (
        RtspCamera(port=free_port(), gop_s=2.0, audio="pcma") as g711,
        RtspCamera(port=free_port(), gop_s=2.0, audio="aac") as aac,
        CamgateServer(free_port(), data_dir, env) as server,
    ):
        server.client.headers["Authorization"] = f"Bearer {ADMIN}"
        for camera_id, camera in ((CAMERA_ID, g711), (AAC_CAMERA_ID, aac)):
            reply = server.service(cameraId=camera_id, rtspUrl=camera.url, action="start")
            assert reply.status_code == 200, reply.text
        for camera_id in (CAMERA_ID, AAC_CAMERA_ID):
            server.wait_state(camera_id, {"running"}, RUNNING_TIMEOUT_S)
        yield server


@pytest.fixture(autouse=True)
def no_viewers_left(server: CamgateServer) -> None:
    """Each test starts with no WebRTC session left by the one before."""
    for camera_id in (CAMERA_ID, AAC_CAMERA_ID):
        wait_for(lambda c=camera_id: not webrtc_stats(server, c)["viewers"], 30, "no viewers")


def admin_client(server: CamgateServer, timeout_s: float = 20) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    return httpx.AsyncClient(base_url=server.base_url, timeout=timeout_s, headers=headers)


def dominant_hz(rate: int, samples: list[int]) -> float:
    """The frequency of a tone, from its rising zero crossings."""
    rising = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    return rising * rate / len(samples)


def webrtc_stats(server: CamgateServer, camera_id: str = CAMERA_ID) -> dict[str, int]:
    stats: dict[str, int] = server.status(camera_id)["outputs"]["webrtc"]
    return stats


async def test_a_whep_viewer_decodes_the_cameras_picture_until_it_deletes_the_session(
    server: CamgateServer,
) -> None:
    dropped_before = webrtc_stats(server)["sessionsDropped"]
    async with admin_client(server) as client, whep_viewer(client, CAMERA_ID) as viewer:
        frames = await viewer.frames(50)  # two seconds at 25 fps
        assert {(f.width, f.height) for f in frames} == {(640, 360)}
        assert webrtc_stats(server)["viewers"] == 1
        assert viewer.location.startswith(f"/whep/{CAMERA_ID}/")
        assert viewer.audio is None  # it offered video only

        ended = await client.delete(viewer.location)
        assert ended.status_code == 200
        assert webrtc_stats(server)["viewers"] == 0
        assert (await client.delete(viewer.location)).status_code == 404
    stats = webrtc_stats(server)
    assert stats["bytesSent"] > 0 and stats["sessionsDropped"] == dropped_before


def test_the_pictures_come_from_ffmpegs_packet_output_and_the_video_is_copied(
    server: CamgateServer,
) -> None:
    """FFmpeg writes the copied video a second time, packet by packet (FLV on an inherited pipe,
    a frame before the MP4 fragment), and the WebRTC output reads its pictures from there."""
    assert server.process is not None
    (argv,) = [line for line in ffmpeg_cmdlines(server.process.pid) if CAMERA_ID in line]
    assert argv.count("-c:v copy") == 2 and "libx264" not in argv
    assert "-f flv pipe:" in argv
    assert webrtc_stats(server)["videoFeed"] == "packets"


@pytest.mark.parametrize("camera_id", [CAMERA_ID, AAC_CAMERA_ID], ids=["g711", "aac"])
async def test_a_camera_with_audio_is_heard_over_webrtc(
    server: CamgateServer, camera_id: str
) -> None:
    """A G.711 camera (and an AAC one) delivers its audio as Opus: the viewer decodes the
    camera's tone."""
    async with admin_client(server) as client, whep_viewer(client, camera_id, audio=True) as viewer:
        assert "opus/48000" in viewer.pc.remoteDescription.sdp.lower()
        await viewer.frames(5)
        rate, heard = await viewer.listen(LISTEN_S)
        assert rate == 48_000
        assert max(heard) > 1000, "silence"
        assert abs(dominant_hz(rate, heard) - TONE_HZ) < 20
        stats = webrtc_stats(server, camera_id)
        assert stats["audioViewers"] == 1 and stats["audioPackets"] > 0
        assert (await client.delete(viewer.location)).status_code == 200


async def test_ten_viewers_of_one_camera_cost_one_ingest(server: CamgateServer) -> None:
    async with admin_client(server, 30) as client, contextlib.AsyncExitStack() as stack:
        viewers = [
            await stack.enter_async_context(whep_viewer(client, CAMERA_ID)) for _ in range(VIEWERS)
        ]
        decoded = await asyncio.gather(*(viewer.frames(10) for viewer in viewers))
        assert all({(f.width, f.height) for f in frames} == {(640, 360)} for frames in decoded)
        assert webrtc_stats(server)["viewers"] == VIEWERS
        assert server.process is not None
        assert len(ffmpeg_pids(server.process.pid, CAMERA_ID)) == 1
        for viewer in viewers:
            assert (await client.delete(viewer.location)).status_code == 200


async def test_a_viewer_that_disappears_is_dropped(server: CamgateServer) -> None:
    dropped_before = webrtc_stats(server)["sessionsDropped"]
    async with admin_client(server) as client:
        async with whep_viewer(client, CAMERA_ID) as viewer:
            await viewer.frames(5)
        # pc.close() sent no DELETE: the server notices (DTLS close or no RTCP) on its own.
        wait_for(lambda: webrtc_stats(server)["viewers"] == 0, 30, "the session to be dropped")
    assert webrtc_stats(server)["sessionsDropped"] == dropped_before + 1


async def test_whep_needs_a_token_or_a_signed_viewer_url(server: CamgateServer) -> None:
    issued = server.client.post(f"/api/cameras/{CAMERA_ID}/viewer-url", json={"ttlSeconds": 60})
    signed = issued.json()["data"]["hls"].split("?", 1)[1]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as anonymous:
        pc = RTCPeerConnection()
        try:
            refused = await post_offer(anonymous, CAMERA_ID, await offer_sdp(pc))
        finally:
            await pc.close()
        assert refused.status_code == 401

        async with whep_viewer(anonymous, CAMERA_ID, query=signed) as viewer:
            assert (await viewer.frames(5))[0].width == 640
            assert viewer.location.endswith(f"?{signed}")
            assert (await anonymous.delete(viewer.location)).status_code == 200
