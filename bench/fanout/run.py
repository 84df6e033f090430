"""LL-HLS viewer fan-out: many concurrent viewers of one camera, on loopback, in one run.

Each viewer behaves like a low-latency player (hls.js in lowLatencyMode): it loads the playlist,
then loops on a blocking reload for the part after the newest it knows (``_HLS_msn``/
``_HLS_part``) and fetches every part the answer lists that it has not fetched yet, over one
keep-alive connection. The phases (``--viewers``, e.g. 0,1,50,500) run one after another
against the same camera and server, so the small counts are the baseline of the large one.

Per phase it reports: blocking playlist answer time (request sent to answer read) p50/p99/max
against the target "part duration + 100 ms"; how far viewers fell behind the newest part any
viewer fetched (sampled every 100 ms; "behind > 1" counts samples more than one part behind);
requests per second; camgate's CPU (the server process; its FFmpeg child apart) and the CPU
per viewer above the idle phase; and the load generator's own CPU, since both share the cores.

With ``--proxy nginx`` the viewers go through nginx configured as in docs/llhls.md (media
cached, playlists passed through with their blocking waits), and nginx's CPU is reported too.

The viewers speak plain HTTP/1.1 over asyncio streams (uvloop when installed): a general
client library costs several times more CPU per request, and the generator shares the machine
with the server it measures. Everything listens on 127.0.0.1 and is stopped on exit.
Run with the project's venv:  .venv/bin/python bench/fanout/run.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.server import CamgateServer, ffmpeg_pids, wait_for  # noqa: E402

CAMERA_ID = "fanout"
PLAYLIST = f"/hls/{CAMERA_ID}/index.m3u8"
BASE = f"/hls/{CAMERA_ID}/"
TARGET_SLACK_S = 0.1  # the target: a blocking answer within part duration + 100 ms (p99)
SAMPLE_S = 0.1
RAMP_S = 1.0  # viewers connect spread over this long
CLK_TCK = os.sysconf("SC_CLK_TCK")
NGINX_CONF = """
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_processes 1;
user root;  # only read as root: lets the worker write the cache in the bench's private directory
events {{ worker_connections 4096; }}
http {{
    access_log off;
    proxy_temp_path {dir}/temp;
    proxy_cache_path {dir}/cache keys_zone=camgate:10m max_size=256m inactive=2m;
    upstream camgate {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        location ~ ^/hls/[^/]+/[0-9a-f]+/(init|seg|part)-[0-9]+\\.(mp4|m4s)$ {{
            proxy_pass http://camgate;
            proxy_cache camgate;
            proxy_cache_lock {lock};
            proxy_cache_lock_timeout 10s;
        }}
        location ~ ^/hls/[^/]+/index\\.m3u8$ {{
            proxy_pass http://camgate;
            proxy_buffering off;
            proxy_read_timeout 30s;
        }}
        location / {{ proxy_pass http://camgate; }}
    }}
}}
"""


class Nginx:
    """nginx in front of camgate, configured as docs/llhls.md shows; stopped by its pid."""

    def __init__(self, work_dir: Path, upstream_port: int, lock: str = "on") -> None:
        self.dir = work_dir / "nginx"
        self.port = free_port()
        (self.dir / "temp").mkdir(parents=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(dir=self.dir, upstream=upstream_port, port=self.port, lock=lock)
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(self.dir), "-g", "daemon off;"],
            start_new_session=True,
        )

    def pids(self) -> list[int]:
        children = [
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and self._parent(entry) == self.process.pid
        ]
        return [self.process.pid, *children]

    @staticmethod
    def _parent(entry: Path) -> int | None:
        try:
            return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


PART_RE = re.compile(r'#EXT-X-PART:DURATION=[\d.]+,URI="([^"]*?part-(\d+)\.m4s[^"]*)"')
PART_TARGET_RE = re.compile(r"#EXT-X-PART-INF:PART-TARGET=([\d.]+)")


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; GET only; bodies by Content-Length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        found = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        body = await self.reader.readexactly(int(found.group(1))) if found else b""
        if re.search(rb"(?i)\r\nconnection:\s*close", head):
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = None


@dataclass
class PlaylistView:
    """What a viewer needs from a playlist: its parts and the position to block for next."""

    parts: list[tuple[int, str]]  # (part index, URI)
    next_msn: int
    next_part: int


def read_playlist(text: str) -> PlaylistView:
    lines = text.splitlines()
    media_sequence = int(next(line for line in lines if line.startswith("#EXT-X-MEDIA-SEQ"))[22:])
    segments = sum(1 for line in lines if line and not line.startswith("#"))
    tail_parts = 0  # parts listed after the last complete segment: the open one's
    for line in reversed(lines):
        if line and not line.startswith("#"):
            break
        tail_parts += line.startswith("#EXT-X-PART:")
    parts = [(int(index), uri) for uri, index in PART_RE.findall(text)]
    # The open segment (if any) follows the complete ones, so its msn is the next number.
    return PlaylistView(parts, media_sequence + segments, tail_parts)


@dataclass
class Phase:
    viewers: int
    waits_s: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    parts_fetched: int = 0
    behind_samples: list[int] = field(default_factory=list)
    server_cpu_s: float = 0.0
    ffmpeg_cpu_s: float = 0.0
    proxy_cpu_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    generator_cpu_s: float = 0.0
    seconds: float = 0.0
    part_target_s: float = 0.0
    measuring: bool = False


async def viewer(port: int, phase: Phase, newest: list[int], slot: int, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    connection = HttpConnection(port)
    try:
        status, body = await connection.get(PLAYLIST)
        view = read_playlist(body.decode())
        last = view.parts[-1][0] if view.parts else -1
        newest[slot] = last
        while True:
            query = f"?_HLS_msn={view.next_msn}&_HLS_part={view.next_part}"
            started = time.perf_counter()
            status, body = await connection.get(PLAYLIST + query)
            waited = time.perf_counter() - started
            if phase.measuring:
                phase.requests += 1
            if status != 200:
                phase.errors += phase.measuring
                status, body = await connection.get(PLAYLIST)
            elif phase.measuring:
                phase.waits_s.append(waited)
            view = read_playlist(body.decode())
            for index, uri in view.parts:
                if index <= last:
                    continue
                status, body = await connection.get(BASE + uri)
                if phase.measuring:
                    phase.requests += 1
                    phase.parts_fetched += status == 200
                    phase.errors += status != 200
                if status != 200 and len(phase.error_samples) < 3:
                    phase.error_samples.append(f"{status} {uri}: {body[:120]!r}")
                last = index
                newest[slot] = last
    except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
        phase.errors += 1
    finally:
        connection.close()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def sample_lag(phase: Phase, newest: list[int]) -> None:
    while True:
        await asyncio.sleep(SAMPLE_S)
        if phase.measuring and newest:
            edge = max(newest)
            phase.behind_samples += [edge - own for own in newest if own >= 0]


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_s(pid)
    return total


async def run_phase(
    server: CamgateServer,
    count: int,
    warmup_s: float,
    seconds: float,
    part_target_s: float,
    proxy: Nginx | None = None,
) -> Phase:
    assert server.process is not None
    phase = Phase(count, part_target_s=part_target_s)
    newest = [-1] * count
    port = proxy.port if proxy is not None else server.port
    tasks = [
        asyncio.create_task(viewer(port, phase, newest, n, RAMP_S * n / max(count, 1)))
        for n in range(count)
    ]
    sampler = asyncio.create_task(sample_lag(phase, newest))
    try:
        await asyncio.sleep(RAMP_S + warmup_s)
        ffmpeg = ffmpeg_pids(server.process.pid, CAMERA_ID)
        server_before = cpu_s(server.process.pid)
        ffmpeg_before = cpu_s(ffmpeg[0]) if ffmpeg else 0.0
        proxy_pids = proxy.pids() if proxy is not None else []
        proxy_before = cpu_of(proxy_pids)
        own_before, started = time.process_time(), time.monotonic()
        phase.measuring = True
        await asyncio.sleep(seconds)
        phase.measuring = False
        phase.seconds = time.monotonic() - started
        phase.generator_cpu_s = time.process_time() - own_before
        phase.server_cpu_s = cpu_s(server.process.pid) - server_before
        phase.ffmpeg_cpu_s = (cpu_s(ffmpeg[0]) - ffmpeg_before) if ffmpeg else 0.0
        phase.proxy_cpu_s = cpu_of(proxy_pids) - proxy_before
    finally:
        for task in [*tasks, sampler]:
            task.cancel()
        for task in [*tasks, sampler]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return phase


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def print_results(phases: list[Phase]) -> None:
    idle = next((p for p in phases if p.viewers == 0), None)
    idle_pct = 100 * idle.server_cpu_s / idle.seconds if idle else None
    target_ms = 1000 * (phases[0].part_target_s + TARGET_SLACK_S)
    print(f"\nblocking answer target: part target + 100 ms = {target_ms:.0f} ms (p99)")
    print(
        f"{'viewers':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'behind>1':>8} "
        f"{'max beh':>7} {'errors':>6} {'camgate %':>9} {'per viewer %':>12} {'ffmpeg %':>8} "
        f"{'generator %':>11} {'nginx %':>7}"
    )
    for p in phases:
        camgate_pct = 100 * p.server_cpu_s / p.seconds
        per_viewer = (
            f"{(camgate_pct - idle_pct) / p.viewers:>12.3f}"
            if idle_pct is not None and p.viewers
            else f"{'-':>12}"
        )
        waits_ms = [1000 * w for w in p.waits_s]
        behind = p.behind_samples
        late = f"{100 * sum(b > 1 for b in behind) / len(behind):>7.2f}%" if behind else "      -"
        timing = (
            f"{statistics.median(waits_ms):>7.0f} {percentile(waits_ms, 99):>7.0f} "
            f"{max(waits_ms):>7.0f}"
            if waits_ms
            else f"{'-':>7} {'-':>7} {'-':>7}"
        )
        print(
            f"{p.viewers:>7} {p.requests / p.seconds:>7.0f} {timing} {late} "
            f"{max(behind, default=0):>7} {p.errors:>6} {camgate_pct:>9.1f} {per_viewer} "
            f"{100 * p.ffmpeg_cpu_s / p.seconds:>8.1f} "
            f"{100 * p.generator_cpu_s / p.seconds:>11.1f} {100 * p.proxy_cpu_s / p.seconds:>7.1f}"
        )


def start(stack: ExitStack, work_dir: Path, env: dict[str, str]) -> tuple[CamgateServer, float]:
    camera = RtspCamera(port=free_port(), gop_s=2.0)
    camera.start()
    stack.callback(camera.stop)
    server_env = {"LOG_LEVEL": "warning", "MAX_CONNECTIONS": "4000", **env}
    server = stack.enter_context(CamgateServer(free_port(), work_dir / "data", server_env))
    reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
    if reply.is_error:
        raise SystemExit(f"camgate refused the stream: {reply.status_code} {reply.text}")

    def playable() -> str | None:
        answer = server.client.get(PLAYLIST)
        return answer.text if answer.status_code == 200 and "#EXTINF" in answer.text else None

    text = wait_for(playable, 60, "a playable LL playlist")
    found = PART_TARGET_RE.search(text)
    return server, float(found.group(1)) if found else 0.2


async def run_all(
    server: CamgateServer, args: argparse.Namespace, part_target_s: float, proxy: Nginx | None
) -> None:
    phases = []
    for count in args.viewers:
        print(f"phase: {count} viewers ...", flush=True)
        phases.append(
            await run_phase(server, count, args.warmup, args.seconds, part_target_s, proxy)
        )
    print_results(phases)
    for phase in phases:
        for sample in phase.error_samples:
            print(f"  {phase.viewers} viewers, e.g.: {sample}")


def playlist_answers(port: int) -> Callable[[], bool]:
    def answered() -> bool:
        with contextlib.suppress(OSError):
            return asyncio.run(HttpConnection(port).get(PLAYLIST))[0] == 200
        return False

    return answered


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="0,1,50,500", help="comma-separated counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--env", action="append", default=[], help="extra camgate setting NAME=VALUE"
    )
    parser.add_argument("--proxy", choices=["none", "nginx"], default="none")
    parser.add_argument(
        "--cache-lock", choices=["on", "off"], default="on", help="nginx proxy_cache_lock"
    )
    args = parser.parse_args(argv)
    args.viewers = [int(v) for v in args.viewers.split(",") if v.strip()]
    if not args.viewers or min(args.viewers) < 0 or args.seconds <= 0:
        parser.error("--viewers takes non-negative counts; --seconds must be > 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        with ExitStack() as stack:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fanout-")))
            print(f"machine: {os.cpu_count()} cores; load {os.getloadavg()}", flush=True)
            server, part_target_s = start(stack, work_dir, env)
            proxy = None
            if args.proxy == "nginx":
                proxy = Nginx(work_dir, server.port, args.cache_lock)
                stack.callback(proxy.stop)
                via = playlist_answers(proxy.port)
                wait_for(via, 20, "nginx to answer")
            print(f"viewers connect to {'nginx' if proxy else 'camgate'}", flush=True)
            asyncio.run(run_all(server, args, part_target_s, proxy))
            print(f"load after: {os.getloadavg()}")
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
