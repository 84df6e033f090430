"""Fleet cost: N copied 720p 2 Mbit/s cameras, one real LL-HLS client per camera.

For each N (default 1, 8, 32, 64, 100) a fresh camgate server starts N cameras at once through the
seed API, then one LL-HLS client per camera plays for `--seconds`: blocking playlist reloads
(`_HLS_msn`/`_HLS_part`) and every part fetched, as hls.js does. Printed per N:
  * start -> first playable LL-HLS playlist, median and max, for N cameras started at once whose
    keyframes arrive at a random phase, and where that time went (from the server's log);
  * CPU of the gateway (server + its FFmpeg children) per camera, in % of one core;
  * PSS per camera (proportional set size: shared pages of the N FFmpeg children counted once);
  * the event loop's lag p99 (from camgate's own histogram; an upper bucket bound);
  * client stalls (no new part for more than 1 s) and the blocking-reload p99.
The baseline in the same run is the seed's pipeline (a re-encoding FFmpeg per camera, 4 s
MPEG-TS segments on disk) at `--seed-counts` (default 1 and 8), its CPU per camera beside ours.

The cameras come from `fleet_camera.py`: one process that encoded a few seconds once and replays
them to every mount, so the cameras cost almost nothing; it is measured apart, as is this load
generator itself.

    .venv/bin/python bench/scale/run.py [--counts 1,8,32,64,100] [--seconds 60]
    .venv/bin/python bench/scale/run.py --counts 16 --seed-counts "" --seconds 10 \
        --uptime-minutes 30      # then 30 minutes of 16 cameras: does anything grow?

Not a test: it prints figures. Everything runs on 127.0.0.1 and is cleaned up on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import imageio_ffmpeg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from camgate.ffmpeg import find_ffmpeg  # noqa: E402
from tests.support.camera import SYSTEM_PYTHON  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.seed_pipeline import SeedPipeline  # noqa: E402
from tests.support.server import CamgateServer, ffmpeg_pids  # noqa: E402

FLEET_SCRIPT = Path(__file__).with_name("fleet_camera.py")
STALL_S = 1.0
_FANOUT = Path(__file__).resolve().parents[1] / "fanout" / "run.py"
_spec = importlib.util.spec_from_file_location("fanout_run", _FANOUT)
assert _spec is not None and _spec.loader is not None
fanout = importlib.util.module_from_spec(_spec)
sys.modules["fanout_run"] = fanout  # its dataclasses look their module up there
_spec.loader.exec_module(fanout)


def pss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else 0.0


@contextlib.contextmanager
def fleet_camera(count: int) -> Iterator[tuple[str, int]]:
    """The cheap camera process; yields its base URL (mounts are /cam0 ... /cam<count-1>) and
    its pid."""
    port = free_port()
    process = subprocess.Popen(
        [SYSTEM_PYTHON, str(FLEET_SCRIPT), f"--port={port}", f"--count={count}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"fleet camera did not start: {line!r}")
        yield line.split(" ", 1)[1], process.pid
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ClientStats:
    parts: int = 0
    stalls: int = 0
    errors: int = 0
    reloads_s: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


async def play(port: int, camera_id: str, until: float, stats: ClientStats) -> None:
    """One LL-HLS client: blocking reloads, every new part fetched, until `until`. The HTTP client
    is bench/fanout's lean keep-alive one: httpx would take more CPU than the gateway."""
    base = f"/hls/{camera_id}/"
    playlist = base + "index.m3u8"
    connection = fanout.HttpConnection(port)
    last = -1
    query = ""
    last_part_at = time.monotonic()
    try:
        while time.monotonic() < until:
            began = time.monotonic()
            status, body = await connection.get(playlist + query)
            if query:
                stats.reloads_s.append(time.monotonic() - began)
            if status != 200:
                stats.errors += 1
                stats.failures[f"playlist {status}"] += 1
                query = ""
                continue
            view = fanout.read_playlist(body.decode())
            if last < 0 and view.parts:  # join at the live edge, as a low-latency player does
                last = view.parts[-1][0] - 1
            for index, uri in view.parts:
                if index <= last:
                    continue
                status, _ = await connection.get(base + uri)
                last = index
                if status != 200:
                    stats.errors += 1
                    stats.failures[f"part {status}"] += 1
                    continue
                stats.parts += 1
                now = time.monotonic()
                gap = now - last_part_at
                stats.stalls += gap > STALL_S
                last_part_at = now
            query = f"?_HLS_msn={view.next_msn}&_HLS_part={view.next_part}"
    except (OSError, asyncio.IncompleteReadError, ValueError) as error:
        stats.errors += 1
        stats.failures[type(error).__name__] += 1
    finally:
        connection.close()


async def start_all(server: CamgateServer, base_url: str, count: int) -> list[float]:
    """Start `count` cameras at once; seconds from each start request to a playable playlist."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:

        async def one(index: int) -> float:
            began = time.monotonic()
            body = {"cameraId": f"cam{index}", "rtspUrl": f"{base_url}/cam{index}"}
            reply = await http.post("/api/streams/service", json={**body, "action": "start"})
            reply.raise_for_status()
            while time.monotonic() - began < 30:
                playlist = await http.get(f"/hls/cam{index}/index.m3u8")
                if playlist.status_code == 200:
                    return time.monotonic() - began
                await asyncio.sleep(0.02)
            raise RuntimeError(f"cam{index} not playable within 30 s")

        return list(await asyncio.gather(*(one(index) for index in range(count))))


_LOG_EVENT = re.compile(
    r'^time=(\S+) .*? camera=(\S+) msg="(stream requested|ffmpeg started|stream ready)'
)


def start_phases(log: str) -> dict[str, list[float]]:
    """Where the start time went, per camera, from the server's log: from the first start
    request to this camera's (the API taking the requests in), from its request to FFmpeg
    describing the camera (spawn, RTSP session, first packets), and from there to ready
    (the camera's next keyframe and the first parts)."""
    seen: dict[str, dict[str, float]] = {}
    for line in log.splitlines():
        match = _LOG_EVENT.match(line)
        if match:
            moment = datetime.fromisoformat(match.group(1)).timestamp()
            seen.setdefault(match.group(2), {}).setdefault(match.group(3), moment)
    events = [e for e in seen.values() if len(e) == 3]
    if not events:
        return {}
    first = min(e["stream requested"] for e in events)
    return {
        "requests taken in": [e["stream requested"] - first for e in events],
        "request -> FFmpeg described the camera": [
            e["ffmpeg started"] - e["stream requested"] for e in events
        ],
        "described -> ready": [e["stream ready"] - e["ffmpeg started"] for e in events],
    }


def lag_buckets(metrics: str) -> dict[float, float]:
    found = {}
    for match in re.finditer(
        r'^camgate_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', metrics, re.MULTILINE
    ):
        found[float(match.group(1))] = float(match.group(2))
    return found


def lag_p99(before: dict[float, float], after: dict[float, float]) -> float:
    """Upper bound of the bucket holding the 99th percentile of the samples between the two."""
    total = after.get(float("inf"), 0) - before.get(float("inf"), 0)
    if total <= 0:
        return float("nan")
    for bound in sorted(after):
        if after[bound] - before.get(bound, 0) >= 0.99 * total:
            return bound
    return float("inf")


@dataclass
class FleetFigures:
    count: int
    starts_s: list[float]
    start_phases_s: dict[str, list[float]]
    cpu_pct_per_camera: float
    pss_mb_per_camera: float
    server_cpu_pct: float
    ffmpeg_cpu_pct: float
    lag_p99_s: float
    stalls: int
    errors: int
    failures: Counter[str]
    reload_p99_s: float
    parts_per_s: float
    camera_cpu_pct: float
    client_cpu_pct: float


async def run_clients(server: CamgateServer, count: int, seconds: float) -> list[ClientStats]:
    until = time.monotonic() + seconds
    stats = [ClientStats() for _ in range(count)]
    await asyncio.gather(*(play(server.port, f"cam{i}", until, stats[i]) for i in range(count)))
    return stats


def measure_fleet(
    base_url: str, camera_pid: int, work: Path, count: int, seconds: float, warmup_s: float
) -> FleetFigures:
    env = {"LOG_LEVEL": "info", "MAX_CONCURRENT_STREAMS": str(count)}  # info: start phases
    with CamgateServer(free_port(), work / f"data{count}", env) as server:
        assert server.process is not None
        starts = asyncio.run(start_all(server, base_url, count))
        phases = start_phases(server.log())
        asyncio.run(run_clients(server, count, warmup_s))  # settle: every client at the edge
        children = ffmpeg_pids(server.process.pid)
        if len(children) != count:
            raise RuntimeError(f"{len(children)} FFmpeg children for {count} cameras")
        pids = {"server": server.process.pid, **{f"ffmpeg{pid}": pid for pid in children}}
        before = {name: fanout.cpu_of([pid]) for name, pid in pids.items()}
        camera_before, me_before = fanout.cpu_of([camera_pid]), fanout.cpu_of([os.getpid()])
        lag_before = lag_buckets(server.client.get("/metrics").text)
        began = time.monotonic()
        stats = asyncio.run(run_clients(server, count, seconds))
        wall = time.monotonic() - began
        lag_after = lag_buckets(server.client.get("/metrics").text)
        used = {name: fanout.cpu_of([pid]) - before[name] for name, pid in pids.items()}
        pss = sum(pss_mb(pid) for pid in pids.values())
        server_pct = 100 * used.pop("server") / wall
        ffmpeg_pct = 100 * sum(used.values()) / wall
        reloads = sorted(s for stat in stats for s in stat.reloads_s)
        return FleetFigures(
            count=count,
            starts_s=starts,
            start_phases_s=phases,
            cpu_pct_per_camera=(server_pct + ffmpeg_pct) / count,
            pss_mb_per_camera=pss / count,
            server_cpu_pct=server_pct,
            ffmpeg_cpu_pct=ffmpeg_pct,
            lag_p99_s=lag_p99(lag_before, lag_after),
            stalls=sum(stat.stalls for stat in stats),
            errors=sum(stat.errors for stat in stats),
            failures=sum((stat.failures for stat in stats), Counter()),
            reload_p99_s=reloads[int(0.99 * (len(reloads) - 1))] if reloads else float("nan"),
            parts_per_s=sum(stat.parts for stat in stats) / wall,
            camera_cpu_pct=100 * (fanout.cpu_of([camera_pid]) - camera_before) / wall,
            client_cpu_pct=100 * (fanout.cpu_of([os.getpid()]) - me_before) / wall,
        )


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def uptime_run(base_url: str, work: Path, count: int, minutes: float) -> None:
    """`count` cameras with their clients for `minutes`, one line a minute: does anything grow
    with uptime? Growth is taken from the end of the second minute (caches filled) to the end."""
    env = {"LOG_LEVEL": "warning", "MAX_CONCURRENT_STREAMS": str(count)}
    with CamgateServer(free_port(), work / f"uptime{count}", env) as server:
        assert server.process is not None
        server_pid = server.process.pid
        asyncio.run(start_all(server, base_url, count))
        rows: list[tuple[float, float, int, int]] = []
        for minute in range(1, int(minutes) + 1):
            children = ffmpeg_pids(server_pid)
            before = fanout.cpu_of([server_pid, *children])
            began = time.monotonic()
            stats = asyncio.run(run_clients(server, count, 60.0))
            used = fanout.cpu_of([server_pid, *children]) - before
            cpu = 100 * used / (time.monotonic() - began)
            children = ffmpeg_pids(server_pid)
            server_mb = pss_mb(server_pid)
            ffmpeg_mb = sum(pss_mb(pid) for pid in children)
            fds = open_fds(server_pid)
            rows.append((server_mb, ffmpeg_mb, fds, len(children)))
            print(
                f"uptime {minute:3d} min | server PSS {server_mb:.1f} MB, FFmpeg PSS "
                f"{ffmpeg_mb:.1f} MB ({len(children)} children) | server fds {fds} | CPU/camera "
                f"{cpu / count:.2f} % | stalls {sum(stat.stalls for stat in stats)} errors "
                f"{sum(stat.errors for stat in stats)}",
                flush=True,
            )
        if len(rows) >= 3:
            (s0, f0, d0, _), (s1, f1, d1, n1) = rows[1], rows[-1]
            print(
                f"uptime growth from minute 2 to {len(rows)}: server PSS {s1 - s0:+.1f} MB, "
                f"FFmpeg PSS {f1 - f0:+.1f} MB, server fds {d1 - d0:+d}, FFmpeg children {n1}",
                flush=True,
            )


def seed_cost(base_url: str, work: Path, count: int, seconds: float) -> float:
    """CPU % of one core per camera of the seed's pipeline with `count` cameras."""
    with contextlib.ExitStack() as stack:
        seeds = [
            stack.enter_context(SeedPipeline(f"{base_url}/cam{i}", work / f"seed{count}-{i}"))
            for i in range(count)
        ]
        for seed in seeds:
            seed.wait_ready(60)
        pids = [seed._process.pid for seed in seeds if seed._process is not None]
        before = fanout.cpu_of(pids)
        began = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - began
        used = fanout.cpu_of(pids) - before
        return 100 * used / wall / count


def start_seconds(binary: str, runs: int = 10) -> float:
    """Median wall time to start `binary -version` and see it exit: what every spawn pays."""
    times = []
    for _ in range(runs):
        began = time.monotonic()
        subprocess.run([binary, "-hide_banner", "-version"], capture_output=True, check=True)
        times.append(time.monotonic() - began)
    return statistics.median(times)


def main() -> None:
    # SIGTERM unwinds like Ctrl-C: every server, camera and FFmpeg started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="1,8,32,64,100")
    parser.add_argument("--seed-counts", default="1,8")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--uptime-minutes", type=float, default=0.0,
        help="then run the first count this long, one line of memory and fds a minute",
    )  # fmt: skip
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",") if n]
    seed_counts = [int(n) for n in args.seed_counts.split(",") if n]
    work = Path(tempfile.mkdtemp(prefix="camgate-scale-"))
    print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f}")
    # What scripts/run.sh runs (it installs no system FFmpeg), unless FFMPEG_PATH says otherwise.
    os.environ.setdefault("FFMPEG_PATH", imageio_ffmpeg.get_ffmpeg_exe())
    chosen = find_ffmpeg(os.environ["FFMPEG_PATH"])
    system = shutil.which("ffmpeg")
    print(f"FFmpeg used: {chosen}: starts in {start_seconds(chosen) * 1000:.0f} ms (median)")
    if system and system != chosen:
        print(f"FFmpeg on PATH: {system}: starts in {start_seconds(system) * 1000:.0f} ms")
    with fleet_camera(max(counts + seed_counts)) as (base_url, camera_pid):
        rows = []
        for count in counts:
            figures = measure_fleet(base_url, camera_pid, work, count, args.seconds, args.warmup)
            rows.append(figures)
            starts = sorted(figures.starts_s)
            print(
                f"N={count:3d}  start->playable median {statistics.median(starts):.2f} s "
                f"max {starts[-1]:.2f} s | CPU/camera {figures.cpu_pct_per_camera:.2f} % "
                f"(server {figures.server_cpu_pct:.1f} %, FFmpeg {figures.ffmpeg_cpu_pct:.1f} %) "
                f"| PSS/camera {figures.pss_mb_per_camera:.1f} MB | loop lag p99 <= "
                f"{figures.lag_p99_s * 1000:.0f} ms | reload p99 {figures.reload_p99_s:.2f} s | "
                f"parts/s {figures.parts_per_s:.0f} | stalls {figures.stalls} errors "
                f"{figures.errors} {dict(figures.failures)} | cameras "
                f"{figures.camera_cpu_pct:.1f} %, clients "
                f"{figures.client_cpu_pct:.1f} %",
                flush=True,
            )
            for phase, seconds in figures.start_phases_s.items():
                ordered = sorted(seconds)
                print(
                    f"       start phase: {phase}: median {statistics.median(ordered):.2f} s, "
                    f"max {ordered[-1]:.2f} s",
                    flush=True,
                )
        if args.uptime_minutes and counts:
            uptime_run(base_url, work, counts[0], args.uptime_minutes)
        for count in seed_counts:
            per_camera = seed_cost(base_url, work, count, min(args.seconds, 30.0))
            ours = next((row for row in rows if row.count == count), None)
            ratio = f", {per_camera / ours.cpu_pct_per_camera:.1f}x ours" if ours else ""
            print(f"seed pipeline N={count:3d}  CPU/camera {per_camera:.2f} %{ratio}", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
