"""Helpers for tests and benchmarks that run several camgate nodes on one PostgreSQL database."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import psycopg

from camgate.ffmpeg import CAMERA_MARKER
from tests.support.postgres import PostgresServer
from tests.support.server import CamgateServer, ffmpeg_cmdlines

VIEWER_SECRET = "fleet-test-secret-0123456789abcdef0123456789"
_databases = itertools.count()


def fresh_database(server: PostgresServer, prefix: str = "fleet") -> str:
    """The URL of a new, empty database on `server`."""
    name = f"{prefix}_{next(_databases)}"
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def node_env(database_url: str, node_id: str, ttl_s: float, heartbeat_s: float) -> dict[str, str]:
    """The environment of one node of a fleet (short leases keep tests fast)."""
    return {
        "CAMGATE_DATABASE_URL": database_url,
        "CAMGATE_NODE_ID": node_id,
        "CAMGATE_VIEWER_SECRET": VIEWER_SECRET,
        "CAMGATE_LEASE_TTL": str(ttl_s),
        "CAMGATE_HEARTBEAT": str(heartbeat_s),
        "LOG_LEVEL": "info",
    }


def runners(nodes: list[CamgateServer], camera_ids: list[str]) -> dict[str, list[int]]:
    """For every camera, the index of each node with an FFmpeg pulling it (one live FFmpeg
    is what "runs" means: a second one anywhere is a duplicate)."""
    found: dict[str, list[int]] = {camera_id: [] for camera_id in camera_ids}
    for index, node in enumerate(nodes):
        if node.process is None or node.process.poll() is not None:
            continue
        for line in ffmpeg_cmdlines(node.process.pid):
            for token in line.split(" "):
                name, _, camera_id = token.partition("=")
                if name == CAMERA_MARKER and camera_id in found:
                    found[camera_id].append(index)
    return found


def duplicates(running: dict[str, list[int]]) -> list[str]:
    return [camera_id for camera_id, where in running.items() if len(where) > 1]


def each_runs_once(running: dict[str, list[int]]) -> bool:
    return all(len(where) == 1 for where in running.values())


def start_nodes(nodes: list[CamgateServer]) -> list[CamgateServer]:
    """Start every node at once (each waits for its own /healthz): a fleet's start-up costs
    one node's, not the sum."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(CamgateServer.start, nodes))
    return nodes


def stop_nodes(nodes: list[CamgateServer]) -> None:
    """Stop every node at once (SIGTERM: each stops its streams and hands its leases over)."""
    if nodes:
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(CamgateServer.stop, nodes))
    for node in nodes:
        node.client.close()
