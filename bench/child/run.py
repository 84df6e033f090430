"""What one FFmpeg child costs, and what starting one costs the server, each against its baseline.

Three measurements, one 720p 2 Mbit/s H.264 test camera (2 s GOP) for all, in one run:
  * spawn: wall time of `camgate.child.spawn` (through `setpriv --pdeathsig` where installed)
    against the same start with a Python pre-exec hook (what spawn did before), from a process
    holding ~120 MB like a server with cameras; one at a time and 32 at once;
  * memory growth: RSS of FFmpeg copying the camera into fragmented MP4, one fragment per frame,
    with camgate's movflags and without `skip_trailer`, sampled every 30 s;
  * CPU: that copy with a fragment per frame (camgate), a fragment per GOP, and with the second
    FLV output for WebRTC, side by side for the same seconds.

    .venv/bin/python bench/child/run.py [--minutes 3] [--seconds 60]

Not a test: it prints figures. Everything runs on 127.0.0.1 and is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import imageio_ffmpeg  # noqa: E402

from camgate import child  # noqa: E402
from camgate.ffmpeg.command import MOVFLAGS  # noqa: E402
from tests.support.camera import RtspCamera  # noqa: E402

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
CLK_TCK = os.sysconf("SC_CLK_TCK")
BALLAST_PAGES = 30_000  # ~120 MB of touched memory: what a fork has to copy page tables for
NO_TRAILER = MOVFLAGS.replace("+skip_trailer", "")
FLV_OUTPUT = ["-map", "0:v:0", "-c:v", "copy", "-flush_packets", "1",
              "-flvflags", "no_duration_filesize", "-f", "flv", "-y", os.devnull]  # fmt: skip


async def timed_spawn(with_hook: bool) -> float:
    began = time.perf_counter()
    if with_hook:  # the start before: a pre-exec hook, so a fork of this whole process
        process = await asyncio.create_subprocess_exec(
            FFMPEG, "-hide_banner", "-version",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True, preexec_fn=child._death_signal_setter(),
        )  # fmt: skip
    else:
        process = await child.spawn([FFMPEG, "-hide_banner", "-version"])
    spent = time.perf_counter() - began
    await process.communicate()
    return spent


async def spawn_figures() -> None:
    ballast = [bytearray(4096) for _ in range(BALLAST_PAGES)]
    wrapper = " ".join(child.death_signal_wrapper()) or "none (pre-exec hook)"
    print(f"spawn (camgate's death-signal wrapper: {wrapper})")
    for with_hook, name in ((True, "pre-exec hook (before)"), (False, "camgate.child.spawn")):
        alone = [await timed_spawn(with_hook) for _ in range(10)]
        began = time.perf_counter()
        await asyncio.gather(*(timed_spawn(with_hook) for _ in range(32)))
        burst = time.perf_counter() - began
        print(
            f"  {name:24s} one at a time: median {statistics.median(alone) * 1000:.1f} ms, "
            f"max {max(alone) * 1000:.1f} ms | 32 at once: {burst * 1000:.0f} ms"
        )
    del ballast


def copy_process(stack: ExitStack, url: str, output: list[str]) -> subprocess.Popen[bytes]:
    """FFmpeg copying the camera's video into `output` (the URL on stdin, as camgate does)."""
    script = f"ffconcat version 1.0\nfile '{url}'\noption rtsp_transport 'tcp'\n"
    process = subprocess.Popen(
        [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
         "-f", "concat", "-safe", "0", "-protocol_whitelist", "pipe,tcp,tls",
         "-nofind_stream_info", "-i", "pipe:0", "-map", "0:v:0", "-c:v", "copy", "-an",
         *output],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    stack.callback(process.wait)
    stack.callback(process.kill)
    assert process.stdin is not None
    process.stdin.write(script.encode())
    process.stdin.close()
    return process


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def fragmented(movflags: str, per_frame: bool = True) -> list[str]:
    return ["-movflags", movflags, *(["-frag_duration", "1"] if per_frame else []),
            "-f", "mp4", "-y", os.devnull]  # fmt: skip


def memory_figures(url: str, minutes: float) -> None:
    print("FFmpeg RSS growth, fragment per frame, after the first 20 s")
    variants = {"camgate (skip_trailer)": fragmented(MOVFLAGS), "without skip_trailer":
                fragmented(NO_TRAILER)}  # fmt: skip
    with ExitStack() as stack:
        pids = {name: copy_process(stack, url, out).pid for name, out in variants.items()}
        time.sleep(20)
        base = {name: rss_kb(pid) for name, pid in pids.items()}
        for step in range(1, int(minutes * 2) + 1):
            time.sleep(30)
            grown = ", ".join(f"{n} +{rss_kb(p) - base[n]} KB" for n, p in pids.items())
            print(f"  {step * 30:4d} s: {grown}", flush=True)


def cpu_figures(url: str, seconds: float) -> None:
    print(f"FFmpeg CPU, % of one core over {seconds:.0f} s, side by side")
    variants = {
        "fragment per frame (camgate)": fragmented(MOVFLAGS),
        "fragment per frame + FLV output": fragmented(MOVFLAGS) + FLV_OUTPUT,
        "fragment per GOP": fragmented(MOVFLAGS, per_frame=False),
    }
    with ExitStack() as stack:
        pids = {name: copy_process(stack, url, out).pid for name, out in variants.items()}
        time.sleep(8)
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        began = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - began
        for name, pid in pids.items():
            print(f"  {name:32s} {100 * (cpu_s(pid) - before[name]) / wall:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="memory sampling time")
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU sampling time")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}; FFmpeg {FFMPEG}")
    asyncio.run(spawn_figures())
    with RtspCamera(width=1280, height=720, bitrate_kbps=2000, gop_s=2.0) as camera:
        memory_figures(camera.url, args.minutes)
        cpu_figures(camera.url, args.seconds)


if __name__ == "__main__":
    main()
