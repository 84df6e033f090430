"""Soak: many streams for minutes while the cameras keep rebooting; nothing may leak.

N streams (--streams) are pulled from one or more test cameras (--cameras) by one camgate server
for --minutes; every --bounce-s seconds each camera is restarted on its port, like a camera
rebooting. At the start (once every stream runs and its HLS window is full) and at the end (once
every stream has recovered from the last bounce) the script prints the number of FFmpeg
processes, the server's open file descriptors, the server's RSS and the total RSS of its FFmpeg
children. It exits 1 if a stream is not running at the end, if the FFmpeg count is not one per
stream, or if a figure grew beyond the noise thresholds below; 0 otherwise.

Everything listens on 127.0.0.1 only and is stopped on exit, Ctrl-C and SIGTERM included.
Run with the project's venv:  .venv/bin/python bench/soak/run.py --minutes 10
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

# The soak drives the same helpers as the integration tests; they live in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.server import CamgateServer, ffmpeg_pids, pids_connected_to  # noqa: E402

MIB = 1024 * 1024
# Quick recovery after each bounce; HEALTHY_AFTER stays below the bounce period so a stream's
# attempt counter resets between bounces, as it would in production.
SERVER_ENV = {
    "LOG_LEVEL": "info",
    "RESTART_DELAY_MIN": "1",
    "RESTART_DELAY_MAX": "4",
    "RTSP_TIMEOUT": "5",
    "STALL_TIMEOUT": "8",
    "HEALTHY_AFTER": "20",
    "STOP_TIMEOUT": "3",
}
ALL_RUNNING_TIMEOUT_S = 90.0
# Six 2 s segments: after this long every stream's in-memory HLS window is full, so the start
# and end snapshots compare like with like.
HLS_WINDOW_FILL_S = 15.0
POLL_S = 0.5

# Growth beyond these is reported as a leak. FDs: the server's sockets and pipes are a fixed set
# per stream once every stream runs; a few HTTP connections may come and go. RSS: Python's
# allocator and the HLS rings move by a few MiB; FFmpeg children are all new processes at the
# end, so their total should match the start's within jitter.
FD_GROWTH_MAX = 16
SERVER_RSS_GROWTH_MAX = 24 * MIB
SERVER_RSS_GROWTH_RATIO_MAX = 0.25
FFMPEG_RSS_GROWTH_RATIO_MAX = 0.25
FFMPEG_RSS_GROWTH_SLACK = 8 * MIB


@dataclass(frozen=True)
class Snapshot:
    ffmpeg_children: int
    ffmpeg_for_cameras: int
    server_fds: int
    server_rss: int
    ffmpeg_rss: int
    running: int
    restarts: int

    def line(self, label: str, streams: int) -> str:
        return (
            f"{label:<6} ffmpeg={self.ffmpeg_children} (pulling the cameras: "
            f"{self.ffmpeg_for_cameras}) server_fds={self.server_fds} "
            f"server_rss={self.server_rss / MIB:.1f}MiB "
            f"ffmpeg_rss_total={self.ffmpeg_rss / MIB:.1f}MiB "
            f"running={self.running}/{streams} restarts={self.restarts}"
        )


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def take_snapshot(server: CamgateServer, cameras: list[RtspCamera]) -> Snapshot:
    assert server.process is not None
    pid = server.process.pid
    children = ffmpeg_pids(pid)
    streams = server.client.get("/api/streams/service").json()["data"]["streams"]
    return Snapshot(
        ffmpeg_children=len(children),
        ffmpeg_for_cameras=sum(len(pids_connected_to(c.port)) for c in cameras),
        server_fds=len(os.listdir(f"/proc/{pid}/fd")),
        server_rss=rss_bytes(pid),
        ffmpeg_rss=sum(rss_bytes(child) for child in children if Path(f"/proc/{child}").exists()),
        running=sum(1 for s in streams if s["state"] == "running"),
        restarts=sum(s["restartCount"] for s in streams),
    )


def running_count(server: CamgateServer) -> int:
    streams = server.client.get("/api/streams/service").json()["data"]["streams"]
    return sum(1 for s in streams if s["state"] == "running")


def wait_all_running(server: CamgateServer, streams: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running_count(server) == streams:
            return True
        time.sleep(0.5)
    return False


def growth_problems(start: Snapshot, end: Snapshot, streams: int) -> list[str]:
    problems = []
    if end.running != streams:
        problems.append(f"only {end.running}/{streams} streams running at the end")
    if end.ffmpeg_children != streams or end.ffmpeg_for_cameras != streams:
        problems.append(
            f"{end.ffmpeg_children} ffmpeg children / {end.ffmpeg_for_cameras} pulling the "
            f"cameras, expected {streams} (one per stream)"
        )
    if end.server_fds - start.server_fds > FD_GROWTH_MAX:
        problems.append(f"server fds grew {start.server_fds} -> {end.server_fds}")
    rss_allowed = max(SERVER_RSS_GROWTH_MAX, start.server_rss * SERVER_RSS_GROWTH_RATIO_MAX)
    if end.server_rss - start.server_rss > rss_allowed:
        problems.append(
            f"server RSS grew {start.server_rss / MIB:.1f} -> {end.server_rss / MIB:.1f} MiB "
            f"(allowed +{rss_allowed / MIB:.1f})"
        )
    ffmpeg_allowed = start.ffmpeg_rss * FFMPEG_RSS_GROWTH_RATIO_MAX + FFMPEG_RSS_GROWTH_SLACK
    if end.ffmpeg_rss - start.ffmpeg_rss > ffmpeg_allowed:
        problems.append(
            f"ffmpeg RSS total grew {start.ffmpeg_rss / MIB:.1f} -> {end.ffmpeg_rss / MIB:.1f} "
            f"MiB (allowed +{ffmpeg_allowed / MIB:.1f})"
        )
    return problems


def start_everything(
    args: argparse.Namespace, stack: ExitStack
) -> tuple[CamgateServer, list[RtspCamera]]:
    cameras: list[RtspCamera] = []
    for _ in range(args.cameras):
        camera = RtspCamera(port=free_port(), gop_s=2.0)
        camera.start()
        stack.callback(camera.stop)
        cameras.append(camera)
    data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="camgate-soak-")))
    server = CamgateServer(
        free_port(),
        data_dir,
        {**SERVER_ENV, "MAX_CONCURRENT_STREAMS": str(max(16, args.streams))},
    )
    stack.enter_context(server)
    for index in range(args.streams):
        camera = cameras[index % len(cameras)]
        reply = server.service(cameraId=f"soak-{index}", rtspUrl=camera.url, action="start")
        reply.raise_for_status()
    return server, cameras


def soak(server: CamgateServer, cameras: list[RtspCamera], args: argparse.Namespace) -> None:
    """Bounce every camera each --bounce-s until --minutes have passed; report each recovery."""
    began = time.monotonic()
    end_at = began + args.minutes * 60
    next_bounce = began + args.bounce_s
    bounced_at: float | None = None
    while (now := time.monotonic()) < end_at:
        if now >= next_bounce:
            if bounced_at is not None:
                print(f"[{now - began:6.0f}s] not every stream recovered before this bounce")
            for camera in cameras:
                camera.restart()
            bounced_at, next_bounce = time.monotonic(), next_bounce + args.bounce_s
            print(f"[{bounced_at - began:6.0f}s] restarted {len(cameras)} camera(s)", flush=True)
        running = running_count(server)
        if bounced_at is not None and running == args.streams:
            took_s = time.monotonic() - bounced_at
            print(f"[{now - began:6.0f}s] all {running} streams running {took_s:.1f} s after it")
            bounced_at = None
        time.sleep(min(POLL_S, max(0.0, min(next_bounce, end_at) - time.monotonic())))


def run(args: argparse.Namespace) -> int:
    print(
        f"soak: {args.streams} streams from {args.cameras} camera(s), {args.minutes:g} min, "
        f"every camera restarted every {args.bounce_s:g} s; {os.cpu_count()} cores",
        flush=True,
    )
    with ExitStack() as stack:
        server, cameras = start_everything(args, stack)
        if not wait_all_running(server, args.streams, ALL_RUNNING_TIMEOUT_S):
            print(f"FAIL: not every stream ran within {ALL_RUNNING_TIMEOUT_S:.0f} s")
            return 1
        time.sleep(HLS_WINDOW_FILL_S)
        start = take_snapshot(server, cameras)
        print(start.line("start", args.streams), flush=True)
        soak(server, cameras, args)
        recovered = wait_all_running(server, args.streams, ALL_RUNNING_TIMEOUT_S)
        if recovered:
            time.sleep(HLS_WINDOW_FILL_S)
        end = take_snapshot(server, cameras)
        print(end.line("end", args.streams), flush=True)
        problems = growth_problems(start, end, args.streams)
    print(f"every stream running at the end: {end.running == args.streams}")
    for problem in problems:
        print(f"FAIL: {problem}")
    print("PASS" if not problems else "FAIL")
    return 1 if problems else 0


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--streams", type=positive_int, default=8, help="streams (default 8)")
    parser.add_argument("--cameras", type=positive_int, default=2, help="cameras (default 2)")
    parser.add_argument("--minutes", type=positive_float, default=10.0, help="default 10")
    parser.add_argument(
        "--bounce-s", type=positive_float, default=60.0, help="camera restart period (60)"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops the server and the cameras.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted; everything stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
