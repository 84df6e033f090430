"""CPU per WebRTC viewer: one camera, N WHEP viewers (aiortc clients), camgate's CPU time.

The camgate server and the camera run as in the latency bench; the viewers run in this process.
They are measuring equipment, not what is measured, so they are made cheap: aiortc decodes every
received picture in a thread per receiver whether or not anyone reads the track, which for 50
viewers would take most of a core from the server on a 2-core machine; here the receivers' decoder
thread only counts pictures (`counting_decoder_worker`). The viewers still receive every RTP
packet, decrypt it (SRTP), reassemble pictures and send RTCP, as a browser does.

For each count the viewers are opened in parallel batches, then the bench waits (with a deadline)
until every one is connected and has received pictures and the server counts them all; only
then camgate's CPU time (user+system of its own process, FFmpeg excluded, from /proc) is read
over --seconds, with the pictures each viewer received meanwhile as a check. --rounds repeats
the whole series; the machine's load average is printed beside each figure. With --audio the
camera sends AAC and every viewer takes audio too (Opus, transcoded once for all of them).
"Per extra viewer" is (CPU with N viewers - CPU with none) / N; with 1 in --viewers the summary
also gives (CPU with N - CPU with 1) / (N - 1), the cost of each viewer after the first (which
alone pays for what is shared, such as the audio transcoding).
--ports compares WEBRTC_PORTS settings in one run, one server after the other on the same
camera: "kernel" (unset: a port per session that the kernel picks), a port every session shares
("8555") or a range ("50000-50100").
Run with the project's venv:  .venv/bin/python bench/latency/webrtc_cpu.py --viewers 1,10,50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx  # noqa: E402
from aiortc import RTCPeerConnection, RTCSessionDescription, rtcrtpreceiver  # noqa: E402

from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.server import CamgateServer  # noqa: E402

CAMERA_ID = "bench"
CAMERA_FPS = 25
TICKS = os.sysconf("SC_CLK_TCK")
OPEN_BATCH = 10  # offers sent at once
CONNECT_TIMEOUT_S = 90.0
SETTLE_S = 2.0  # after every viewer is connected: the catch-up bursts are over
IDLE_S = 2.0  # after closing the viewers of one count, before the next
# Pictures received per receiver thread, keyed by the thread's queue (one per viewer).
PICTURES: Counter[int] = Counter()


def counting_decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    """Stands in for aiortc's decoder thread: counts the received pictures, decodes none."""
    key = id(input_q)
    while input_q.get() is not None:
        PICTURES[key] += 1
    asyncio.run_coroutine_threadsafe(output_q.put(None), loop)


rtcrtpreceiver.decoder_worker = counting_decoder_worker  # type: ignore[assignment]


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of one process (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:13]) / TICKS


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def viewer(client: httpx.AsyncClient, audio: bool) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    reply = await client.post(
        f"/whep/{CAMERA_ID}",
        content=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp"},
    )
    reply.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(reply.text, "answer"))
    return pc


async def open_viewers(
    client: httpx.AsyncClient, count: int, audio: bool
) -> list[RTCPeerConnection]:
    pcs: list[RTCPeerConnection] = []
    while len(pcs) < count:
        batch = min(OPEN_BATCH, count - len(pcs))
        pcs += await asyncio.gather(*(viewer(client, audio) for _ in range(batch)))
    return pcs


def server_viewers(server: CamgateServer) -> int:
    viewers: int = server.status(CAMERA_ID)["outputs"]["webrtc"]["viewers"]
    return viewers


async def wait_connected(server: CamgateServer, pcs: list[RTCPeerConnection]) -> float:
    """Seconds until every viewer is connected, receives pictures and is counted by camgate."""
    started = time.monotonic()
    while True:
        connected = sum(1 for pc in pcs if pc.connectionState == "connected")
        receiving = sum(1 for count in PICTURES.values() if count > 0)
        if connected == len(pcs) and receiving >= len(pcs) and server_viewers(server) == len(pcs):
            return time.monotonic() - started
        if time.monotonic() - started > CONNECT_TIMEOUT_S:
            raise SystemExit(
                f"only {connected}/{len(pcs)} viewers connected, {receiving} receiving, "
                f"camgate counts {server_viewers(server)} after {CONNECT_TIMEOUT_S:g}s"
            )
        await asyncio.sleep(0.2)


async def sample(pid: int, seconds: float) -> float:
    """camgate's share of one core over ``seconds``."""
    before = cpu_s(pid)
    await asyncio.sleep(seconds)
    return (cpu_s(pid) - before) / seconds


async def measure(
    server: CamgateServer, client: httpx.AsyncClient, count: int, seconds: float, audio: bool
) -> tuple[float, float, float]:
    """(camgate's share of a core, seconds to connect everyone, lowest pictures/s received)."""
    assert server.process is not None
    PICTURES.clear()
    pcs = await open_viewers(client, count, audio)
    try:
        connect_s = await wait_connected(server, pcs)
        await asyncio.sleep(SETTLE_S)
        before = dict(PICTURES)
        busy = await sample(server.process.pid, seconds)
        rates = [(PICTURES[key] - before.get(key, 0)) / seconds for key in PICTURES]
        if len(rates) < count or server_viewers(server) != count:
            raise SystemExit(f"viewers were lost while sampling {count}")
        return busy, connect_s, min(rates)
    finally:
        await asyncio.gather(*(pc.close() for pc in pcs))
        await asyncio.sleep(IDLE_S)


async def run(
    server: CamgateServer, counts: list[int], seconds: float, rounds: int, audio: bool, ports: str
) -> None:
    assert server.process is not None
    pid = server.process.pid
    per_viewer: dict[int, list[float]] = {count: [] for count in counts}
    after_first: dict[int, list[float]] = {count: [] for count in counts if count > 1}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        await asyncio.sleep(3)
        print(
            f"{'ports':>11} {'round':>5} {'viewers':>7} {'camgate CPU %':>14} "
            f"{'per extra viewer %':>19} {'connect s':>9} {'min fps':>7}  load"
        )
        for round_ in range(1, rounds + 1):
            idle = await sample(pid, seconds)
            blank = f"{'-':>19} {'-':>9} {'-':>7}"
            print(f"{ports:>11} {round_:>5} {0:>7} {idle * 100:>14.1f} {blank}  {load_average()}")
            busy_by_count: dict[int, float] = {}
            for count in counts:
                busy, connect_s, min_fps = await measure(server, client, count, seconds, audio)
                busy_by_count[count] = busy
                per = (busy - idle) / count * 100
                per_viewer[count].append(per)
                if count > 1 and 1 in busy_by_count:
                    after_first[count].append((busy - busy_by_count[1]) / (count - 1) * 100)
                print(
                    f"{ports:>11} {round_:>5} {count:>7} {busy * 100:>14.1f} {per:>19.2f} "
                    f"{connect_s:>9.1f} {min_fps:>7.1f}  {load_average()}",
                    flush=True,
                )
    print()
    for count, figures in per_viewer.items():
        line = (
            f"ports {ports}, {count:>3} viewers: per extra viewer median "
            f"{statistics.median(figures):.2f} % (rounds: {', '.join(f'{f:.2f}' for f in figures)})"
        )
        if after_first.get(count):
            line += f"; after the first {statistics.median(after_first[count]):.2f} % each"
        print(line)
    print()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="1,10", help="comma-separated viewer counts")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per count")
    parser.add_argument("--rounds", type=int, default=1, help="times the whole series is run")
    parser.add_argument("--audio", action="store_true", help="an AAC camera, viewers take audio")
    parser.add_argument(
        "--ports", default="kernel", help="comma-separated WEBRTC_PORTS values; kernel: unset"
    )
    args = parser.parse_args(argv)
    counts = [int(v) for v in args.viewers.split(",") if v.strip()]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as work:
        audio = "aac" if args.audio else "none"
        camera = stack.enter_context(
            RtspCamera(timecode=True, gop_s=2.0, fps=CAMERA_FPS, audio=audio)
        )
        for index, ports in enumerate(p.strip() for p in args.ports.split(",") if p.strip()):
            env = {
                "LOG_LEVEL": "warning",
                "WEBRTC_MAX_VIEWERS_PER_CAMERA": "1000",
                "WEBRTC_MAX_VIEWERS": "1000",
            }
            if ports != "kernel":
                env["WEBRTC_PORTS"] = ports
            with CamgateServer(free_port(), Path(work) / f"data{index}", env) as server:
                reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
                reply.raise_for_status()
                server.wait_state(CAMERA_ID, {"running"}, 60)
                asyncio.run(run(server, counts, args.seconds, args.rounds, args.audio, ports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
