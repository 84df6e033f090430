"""A WHEP client as the tests use it: aiortc offering to receive, as a browser would.

It POSTs its offer to ``/whep/<id>``, connects over ICE/DTLS and decodes (PyAV, inside aiortc)
the H.264 and Opus it receives.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import av
import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from av.audio.resampler import AudioResampler

FRAME_TIMEOUT_S = 15.0


@dataclass
class WhepViewer:
    pc: RTCPeerConnection
    location: str
    track: MediaStreamTrack
    audio: MediaStreamTrack | None = None

    async def frames(self, count: int) -> list[av.VideoFrame]:
        """The next ``count`` decoded pictures."""
        out = []
        async with asyncio.timeout(FRAME_TIMEOUT_S):
            while len(out) < count:
                frame = await self.track.recv()
                assert isinstance(frame, av.VideoFrame)
                out.append(frame)
        return out

    async def listen(self, seconds: float) -> tuple[int, list[int]]:
        """(sample rate, mono 16-bit samples) of ``seconds`` of decoded audio."""
        assert self.audio is not None, "the answer sends no audio"
        mono = AudioResampler(format="s16", layout="mono")
        samples = array.array("h")
        rate = 0
        async with asyncio.timeout(FRAME_TIMEOUT_S):
            while not rate or len(samples) < seconds * rate:
                frame = await self.audio.recv()
                assert isinstance(frame, av.AudioFrame)
                rate = frame.sample_rate
                for pcm in mono.resample(frame):
                    samples.frombytes(bytes(pcm.planes[0])[: pcm.samples * 2])
        return rate, list(samples)


async def offer_sdp(pc: RTCPeerConnection, audio: bool = False) -> str:
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers before returning
    return pc.localDescription.sdp


async def post_offer(
    client: httpx.AsyncClient, camera_id: str, sdp: str, query: str = ""
) -> httpx.Response:
    url = f"/whep/{camera_id}" + (f"?{query}" if query else "")
    return await client.post(url, content=sdp, headers={"Content-Type": "application/sdp"})


@contextlib.asynccontextmanager
async def whep_viewer(
    client: httpx.AsyncClient, camera_id: str, query: str = "", audio: bool = False
) -> AsyncIterator[WhepViewer]:
    pc = RTCPeerConnection()
    tracks: dict[str, MediaStreamTrack] = {}
    pc.on("track", lambda track: tracks.setdefault(track.kind, track))
    try:
        reply = await post_offer(client, camera_id, await offer_sdp(pc, audio), query)
        assert reply.status_code == 201, reply.text
        assert reply.headers["content-type"].startswith("application/sdp")
        await pc.setRemoteDescription(RTCSessionDescription(reply.text, "answer"))
        yield WhepViewer(pc, reply.headers["location"], tracks["video"], tracks.get("audio"))
    finally:
        await pc.close()
