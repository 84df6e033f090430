"""Failover benchmark: SIGKILL one node of a fleet, time until each of its cameras plays again.

Starts a throw-away PostgreSQL server, one test camera, and N camgate nodes sharing the database
(default 3 nodes x 32 cameras, the default lease TTL and heartbeat). Once every camera runs
exactly once, the node holding the most cameras is killed with SIGKILL. Then, every 100 ms,
it samples which node's FFmpeg pulls which camera (a sample where one camera has two is a
duplicate) and asks a surviving node for each moved camera's playlist, following the redirect
to its new owner (with --playback proxy the surviving node relays the request instead). Prints
the median and max of kill -> playable, and the duplicate samples.

    .venv/bin/python bench/failover/run.py --nodes 3 --cameras 32 --runs 3
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The bench drives the same helpers as the integration tests; they live in the tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx  # noqa: E402

from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.fleet import (  # noqa: E402
    duplicates,
    each_runs_once,
    fresh_database,
    node_env,
    runners,
)
from tests.support.ports import free_port  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.server import CamgateServer, wait_for  # noqa: E402

SAMPLE_S = 0.1
PLAYABLE_TIMEOUT_S = 90


def playable(client: httpx.Client, camera_id: str) -> bool:
    try:
        reply = client.get(f"/hls/{camera_id}/index.m3u8?ll=0", timeout=2)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and reply.text.startswith("#EXTM3U")


def one_run(args: argparse.Namespace, pg: PostgresServer, root: Path) -> tuple[list[float], int]:
    url = fresh_database(pg, "bench")
    ids = [f"cam-{n:03d}" for n in range(args.cameras)]
    nodes: list[CamgateServer] = []
    with RtspCamera(port=free_port(), gop_s=1.0) as camera:
        try:
            for index in range(args.nodes):
                env = node_env(url, f"node{index}", args.ttl, args.heartbeat)
                env |= {
                    "MAX_CONCURRENT_STREAMS": str(args.cameras * args.nodes),
                    "CAMGATE_CLUSTER_PLAYBACK": args.playback,
                }
                node = CamgateServer(free_port(), root / f"run{time.monotonic_ns()}-{index}", env)
                nodes.append(node.start())
            wait_for(
                lambda: (
                    len(nodes[0].client.get("/api/cameras").json()["data"]["cluster"]["nodes"])
                    == args.nodes
                ),
                30,
                "every node to join",
            )
            for camera_id in ids:
                nodes[0].client.put(f"/api/cameras/{camera_id}", json={"rtspUrl": camera.url})
            running = wait_for(
                lambda: (r := runners(nodes, ids)) and each_runs_once(r) and r,
                120,
                "every camera to run once",
                0.5,
            )
            with httpx.Client(base_url=nodes[0].base_url, follow_redirects=True) as viewer:
                wait_for(lambda: all(playable(viewer, c) for c in ids), 60, "playback", 0.5)
            loads = [sum(1 for w in running.values() if w == [i]) for i in range(args.nodes)]
            victim = loads.index(max(loads))
            moved = [c for c, where in running.items() if where == [victim]]
            survivor = nodes[(victim + 1) % args.nodes]
            print(f"  loads {loads}; killing node{victim} with {len(moved)} cameras", flush=True)
            return measure(nodes, victim, survivor, moved, ids)
        finally:
            for node in nodes:
                node.stop()
                node.client.close()


def measure(
    nodes: list[CamgateServer],
    victim: int,
    survivor: CamgateServer,
    moved: list[str],
    ids: list[str],
) -> tuple[list[float], int]:
    client = httpx.Client(base_url=survivor.base_url, follow_redirects=True)
    nodes[victim].stop(signal.SIGKILL)
    killed_at = time.monotonic()
    back: dict[str, float] = {}
    duplicate_samples = 0
    while len(back) < len(moved) and time.monotonic() - killed_at < PLAYABLE_TIMEOUT_S:
        duplicate_samples += bool(duplicates(runners(nodes, ids)))
        for camera_id in moved:
            if camera_id not in back and playable(client, camera_id):
                back[camera_id] = time.monotonic() - killed_at
        time.sleep(SAMPLE_S)
    client.close()
    missing = len(moved) - len(back)
    if missing:
        print(f"  {missing} cameras never became playable again", flush=True)
    return list(back.values()), duplicate_samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cameras", type=int, default=32, help="cameras per node")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--ttl", type=float, default=10.0, help="CAMGATE_LEASE_TTL")
    parser.add_argument("--heartbeat", type=float, default=2.0, help="CAMGATE_HEARTBEAT")
    parser.add_argument(
        "--playback",
        choices=("redirect", "proxy"),
        default="redirect",
        help="CAMGATE_CLUSTER_PLAYBACK: the surviving node redirects the player or relays it",
    )
    args = parser.parse_args()
    args.cameras *= args.nodes
    times: list[float] = []
    duplicates_total = 0
    with PostgresServer() as pg, tempfile.TemporaryDirectory(prefix="camgate-failover-") as tmp:
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}", flush=True)
            found, dup = one_run(args, pg, Path(tmp))
            if found:
                print(
                    f"  moved {len(found)}: median {statistics.median(found):.2f} s, "
                    f"max {max(found):.2f} s, duplicate samples {dup}",
                    flush=True,
                )
            times += found
            duplicates_total += dup
    if not times:
        print("no camera became playable again")
        return 1
    print(
        f"all runs: {len(times)} moved cameras, kill -> playable median "
        f"{statistics.median(times):.2f} s, max {max(times):.2f} s; "
        f"duplicate-ownership samples {duplicates_total}"
    )
    return 0 if duplicates_total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
