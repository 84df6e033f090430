"""CPU per WebRTC viewer: one camera, N WHEP viewers (aiortc clients), camgate's CPU time.

The camgate server and the camera run as in the latency bench; the viewers run in this process
and only receive RTP (their tracks are not read, so aiortc does not hand pictures on). camgate's
CPU time (user+system, from /proc) is read over --seconds with 0 viewers, then with each count.
Run with the project's venv:  .venv/bin/python bench/latency/webrtc_cpu.py --viewers 1,10,50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx  # noqa: E402
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402

from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.server import CamgateServer  # noqa: E402

CAMERA_ID = "bench"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process and its waited-for children (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:13]) / TICKS


async def viewer(client: httpx.AsyncClient) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    reply = await client.post(
        f"/whep/{CAMERA_ID}",
        content=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp"},
    )
    reply.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(reply.text, "answer"))
    return pc


async def sample(pid: int, seconds: float) -> float:
    """camgate's share of one core over ``seconds``."""
    before = cpu_s(pid)
    await asyncio.sleep(seconds)
    return (cpu_s(pid) - before) / seconds


async def run(server: CamgateServer, counts: list[int], seconds: float) -> None:
    assert server.process is not None
    pid = server.process.pid
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        await asyncio.sleep(3)
        idle = await sample(pid, seconds)
        print(f"{'viewers':>7} {'camgate CPU %':>14} {'per extra viewer %':>19}")
        print(f"{0:>7} {idle * 100:>14.1f} {'-':>19}")
        for count in counts:
            pcs = [await viewer(client) for _ in range(count)]
            await asyncio.sleep(3)  # connected and sending
            busy = await sample(pid, seconds)
            status = server.status(CAMERA_ID)["outputs"]["webrtc"]
            per = (busy - idle) / count * 100
            seen = status["viewers"]
            print(f"{count:>7} {busy * 100:>14.1f} {per:>19.2f}   (server sees {seen})")
            await asyncio.gather(*(pc.close() for pc in pcs))
            await asyncio.sleep(2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="1,10", help="comma-separated viewer counts")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per count")
    args = parser.parse_args(argv)
    counts = [int(v) for v in args.viewers.split(",") if v.strip()]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as work:
        camera = stack.enter_context(RtspCamera(timecode=True, gop_s=2.0))
        env = {"LOG_LEVEL": "info", "WEBRTC_MAX_VIEWERS_PER_CAMERA": "1000"}
        server = stack.enter_context(CamgateServer(free_port(), Path(work) / "data", env))
        reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
        reply.raise_for_status()
        server.wait_state(CAMERA_ID, {"running"}, 60)
        asyncio.run(run(server, counts, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
