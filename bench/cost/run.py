"""Cost of one camera: time from `start` to a playable playlist, and CPU/memory per stream.

Runs a 720p 2 Mbit/s H.264 test camera (2 s GOP), a camgate server, and measures in one run:
  * start -> first playable LL-HLS playlist and -> first plain-HLS playlist (N starts);
  * CPU and RSS of camgate's FFmpeg (stream copy) and of the camgate server process itself;
  * the same with a re-encode override (libx264 ultrafast), and the seed's pipeline
    (re-encode into 4 s MPEG-TS HLS on disk) as the baselines, with ratios.

    .venv/bin/python bench/cost/run.py [--starts 8] [--seconds 20]

Not a test: it prints figures. Everything runs on 127.0.0.1 and is cleaned up on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.seed_pipeline import SeedPipeline  # noqa: E402
from tests.support.server import CamgateServer, wait_for  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def measure(pids: dict[str, int], seconds: float) -> dict[str, tuple[float, float]]:
    """CPU % of one core and RSS (MB) of each pid over `seconds`."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - start
    return {
        name: (100 * (cpu_seconds(pid) - before[name]) / wall, rss_mb(pid))
        for name, pid in pids.items()
    }


def time_to_playable(
    server: CamgateServer, url: str, starts: int
) -> tuple[list[float], list[float]]:
    ll, plain = [], []
    for n in range(starts):
        camera_id = f"start{n}"
        began = time.monotonic()
        assert server.service(cameraId=camera_id, rtspUrl=url, action="start").status_code == 200
        path = f"/hls/{camera_id}/index.m3u8"
        wait_for(lambda p=path: server.client.get(p).status_code == 200, 30, "LL playlist", 0.02)
        ll.append(time.monotonic() - began)
        wait_for(
            lambda p=path: server.client.get(p, params={"ll": "0"}).status_code == 200,
            30,
            "plain playlist",
            0.02,
        )
        plain.append(time.monotonic() - began)
        server.service(cameraId=camera_id, action="stop")
    return ll, plain


@contextlib.contextmanager
def other_viewer(url: str) -> Iterator[None]:
    """Another RTSP client watching the camera, so it streams before camgate connects."""
    viewer = subprocess.Popen(
        [
            "ffmpeg",
            "-loglevel",
            "quiet",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-c",
            "copy",
            "-f",
            "null",
            "-",
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # past the camera's first keyframe: a running stream, random GOP phase
        yield
    finally:
        viewer.kill()
        viewer.wait()


def stream_cost(server: CamgateServer, url: str, seconds: float, **overrides: str) -> dict:
    camera_id = "reencode" if overrides else "copy"
    body = {"cameraId": camera_id, "rtspUrl": url, "action": "start"}
    if overrides:
        body["overrides"] = overrides
    assert server.service(**body).status_code == 200
    pid = server.wait_state(camera_id, {"running"}, 30)["pid"]
    time.sleep(3)  # let start-up work settle before measuring
    assert server.process is not None
    result = measure({"ffmpeg": pid, "server": server.process.pid}, seconds)
    server.service(cameraId=camera_id, action="stop")
    return result


def seed_cost(url: str, work: Path, seconds: float) -> tuple[float, float]:
    with SeedPipeline(url, work) as seed:
        seed.wait_ready(30)
        assert seed._process is not None
        return measure({"seed": seed._process.pid}, seconds)["seed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="camgate-cost-"))
    print(f"machine: {os.cpu_count()} cores, {platform_cpu()}")
    camera = RtspCamera(port=free_port(), width=1280, height=720, bitrate_kbps=2000, gop_s=2.0)
    with camera, CamgateServer(free_port(), work / "data", {"LOG_LEVEL": "info"}) as server:
        # The test camera starts its encoder for a first client; a real camera is already
        # streaming when camgate connects. Measure both: alone, and with another viewer on it.
        for label, warm in (("camera idle", False), ("camera already streaming", True)):
            with other_viewer(camera.url) if warm else contextlib.nullcontext():
                ll, plain = time_to_playable(server, camera.url, args.starts)
            print(
                f"start -> playable, {label} ({args.starts} starts): "
                f"LL-HLS median {statistics.median(ll):.2f} s (max {max(ll):.2f}), "
                f"plain HLS median {statistics.median(plain):.2f} s (max {max(plain):.2f})"
            )
        copy = stream_cost(server, camera.url, args.seconds)
        encode = stream_cost(server, camera.url, args.seconds, videoBitrate="2000k")
        seed = seed_cost(camera.url, work, args.seconds)
    print(f"\nCPU (% of one core) and RSS over {args.seconds:.0f} s, 720p 2 Mbit/s H.264 camera:")
    print(f"{'pipeline':<42}{'CPU %':>8}{'RSS MB':>9}")
    rows = [
        ("camgate copy: ffmpeg", copy["ffmpeg"]),
        ("camgate copy: server (parse + segment)", copy["server"]),
        ("camgate re-encode override: ffmpeg", encode["ffmpeg"]),
        ("seed pipeline (x264 + 4 s TS): ffmpeg", seed),
    ]
    for name, (cpu, rss) in rows:
        print(f"{name:<42}{cpu:>8.1f}{rss:>9.1f}")
    per_camera = copy["ffmpeg"][0] + copy["server"][0]
    print(
        f"\ncamgate per camera (ffmpeg + server share): {per_camera:.1f} % of a core; "
        f"seed / camgate CPU ratio: {seed[0] / max(per_camera, 0.01):.1f}x"
    )


def platform_cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
