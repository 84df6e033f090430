"""Many nodes, one fleet: three camgate nodes on one real PostgreSQL server share twelve cameras.

Each camera runs on exactly one node; a killed node's cameras move to the others within the
lease time; a node that joins gets its share a few cameras per interval; a paused node stops its
streams and leaves them to their new owners. (A database restart: test_cluster_playback.py.) "Runs" means an FFmpeg child pulling the camera, read from /proc.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.camera import RtspCamera
from tests.support.fleet import (
    duplicates,
    each_runs_once,
    fresh_database,
    node_env,
    runners,
    start_nodes,
    stop_nodes,
)
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer
from tests.support.server import CamgateServer, wait_for

pytestmark = pytest.mark.integration

TTL_S = 3.0
HEARTBEAT_S = 0.5
START_S = 8.0  # FFmpeg connects to the test camera and writes its first output
CAMERAS = [f"cam-{n:02d}" for n in range(12)]
REBALANCE_S = 3.0  # CAMGATE_REBALANCE_INTERVAL: one camera handed over per node per interval
REBALANCE = {"CAMGATE_REBALANCE_MOVES": "1", "CAMGATE_REBALANCE_INTERVAL": str(REBALANCE_S)}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


StartFleet = Callable[..., list[CamgateServer]]


@pytest.fixture
def start_fleet(tmp_path: Path, postgres: PostgresServer) -> Iterator[StartFleet]:
    """`start_fleet(count, **env)`: that many nodes on a fresh database, started together and
    all joined; `start_fleet(names=[...])` adds nodes to the same fleet. All stopped at the end."""
    url = fresh_database(postgres)
    started: list[CamgateServer] = []

    def start(count: int = 0, names: list[str] | None = None, **extra: str) -> list[CamgateServer]:
        names = names or [f"node{i}" for i in range(count)]
        env = {name: node_env(url, name, TTL_S, HEARTBEAT_S) | extra for name in names}
        nodes = [CamgateServer(free_port(), tmp_path / name, env[name]) for name in names]
        started.extend(nodes)
        start_nodes(nodes)
        live = sum(node.process is not None and node.process.poll() is None for node in started)
        wait_for(lambda: len(fleet_of(nodes[0])["nodes"]) == live, 10, "every node to join")
        return nodes

    yield start
    stop_nodes(started)


def fleet_of(node: CamgateServer) -> dict:  # type: ignore[type-arg]
    reply = node.client.get("/api/cameras")
    reply.raise_for_status()
    return reply.json()["data"]["cluster"]  # type: ignore[no-any-return]


def add_cameras(node: CamgateServer, camera: RtspCamera, ids: list[str]) -> None:
    for camera_id in ids:
        reply = node.client.put(f"/api/cameras/{camera_id}", json={"rtspUrl": camera.url})
        assert reply.status_code == 200, reply.text


def settled(nodes: list[CamgateServer], ids: list[str] = CAMERAS) -> dict[str, list[int]] | None:
    running = runners(nodes, ids)
    return running if each_runs_once(running) else None


def test_every_camera_runs_once_a_killed_nodes_cameras_move_and_a_new_node_gets_a_share(
    start_fleet: StartFleet, camera: RtspCamera
) -> None:
    nodes = start_fleet(3, **REBALANCE)
    add_cameras(nodes[0], camera, CAMERAS)
    running = wait_for(lambda: settled(nodes), START_S + 2 * TTL_S, "each camera to run once")
    per_node = [sum(1 for where in running.values() if where == [i]) for i in range(3)]
    assert per_node == [4, 4, 4]  # nobody claims beyond its fair share

    # Any node shows the whole fleet and who runs each camera (as soon as it has read the
    # owners' latest claims).
    expected = {camera_id: f"node{where[0]}" for camera_id, where in running.items()}

    def owners_listed() -> dict[str, str | None]:
        listed = nodes[1].client.get("/api/cameras").json()["data"]["streams"]
        return {s["cameraId"]: s["owner"] for s in listed}

    wait_for(lambda: owners_listed() == expected, 2 * TTL_S, "node1 to list every owner")

    # Playback on a node that does not run the camera: a redirect to the owner, query kept.
    elsewhere = next(c for c, where in running.items() if where != [1])
    reply = nodes[1].client.get(f"/hls/{elsewhere}/index.m3u8?ll=0&x=1")
    owner = nodes[running[elsewhere][0]]
    assert reply.status_code == 307
    assert reply.headers["location"] == f"{owner.base_url}/hls/{elsewhere}/index.m3u8?ll=0&x=1"

    victim = 2
    moved = [c for c, where in running.items() if where == [victim]]
    nodes[victim].stop(signal.SIGKILL)
    killed_at = time.monotonic()
    duplicate_samples = 0

    def moved_and_counted() -> bool:
        nonlocal duplicate_samples
        now = runners(nodes, CAMERAS)
        duplicate_samples += bool(duplicates(now))
        return each_runs_once(now)

    wait_for(moved_and_counted, TTL_S + START_S + 2, "the killed node's cameras to move", 0.05)
    assert duplicate_samples == 0
    assert time.monotonic() - killed_at < TTL_S + START_S
    after = runners(nodes, CAMERAS)
    assert all(after[c][0] in (0, 1) for c in moved)

    # A new node joins: the two busy nodes hand it a camera each per interval, none runs twice.
    before = runners(nodes, CAMERAS)  # first: the first hand-over follows the join at once
    nodes[victim] = start_fleet(names=["node3"], **REBALANCE)[0]
    handed_over, duplicate_samples = rebalanced(nodes, before, joined=victim)
    assert duplicate_samples == 0
    assert {node: len(times) for node, times in handed_over.items()} == {0: 2, 1: 2}  # 4/4/4
    # Each node's two hand-overs are an interval apart (without the budget they would follow
    # each other within a heartbeat); the slack: one FFmpeg may take longer to stop than the other.
    for times in handed_over.values():
        assert all(b - a >= REBALANCE_S - 1.0 for a, b in itertools.pairwise(times)), times


def rebalanced(
    nodes: list[CamgateServer], before: dict[str, list[int]], joined: int
) -> tuple[dict[int, list[float]], int]:
    """Sample until the node `joined` runs its fair share. Returns, for each node that gave
    cameras away since `before`, when each of those FFmpeg was seen stopped, and how many
    samples had a duplicate."""
    previous = before
    handed_over: dict[int, list[float]] = {}
    duplicate_samples = 0

    def balanced() -> bool:
        nonlocal previous, duplicate_samples
        now = runners(nodes, CAMERAS)
        duplicate_samples += bool(duplicates(now))
        for camera_id, where in previous.items():
            for index in set(where) - set(now[camera_id]):
                handed_over.setdefault(index, []).append(time.monotonic())
        previous = now
        per_node = [sum(where == [i] for where in now.values()) for i in range(len(nodes))]
        return each_runs_once(now) and per_node[joined] == len(CAMERAS) // len(nodes)

    moves = len(CAMERAS) // len(nodes)
    wait_for(balanced, moves * REBALANCE_S + START_S + 5, "the new node to get its share", 0.05)
    return handed_over, duplicate_samples


def test_a_paused_node_stops_its_streams_and_does_not_fight_for_them(
    start_fleet: StartFleet, camera: RtspCamera
) -> None:
    nodes = start_fleet(3, CAMGATE_REBALANCE_MOVES="0")
    ids = CAMERAS[:6]  # two a node: what the paused node does with its own is the story
    add_cameras(nodes[0], camera, ids)
    wait_for(lambda: settled(nodes, ids), START_S + 2 * TTL_S, "each camera to run once")
    paused = nodes[0]
    assert paused.process is not None
    os.kill(paused.process.pid, signal.SIGSTOP)
    paused_at = time.monotonic()
    try:
        others = nodes[1:]
        wait_for(
            lambda: each_runs_once(runners(others, ids)),
            TTL_S + START_S + 2,
            "the paused node's cameras to run on the others",
        )
        time.sleep(max(0.0, paused_at + 2 * TTL_S - time.monotonic()))  # 2 x TTL in all
    finally:
        os.kill(paused.process.pid, signal.SIGCONT)
    wait_for(
        lambda: not any(0 in where for where in runners(nodes, ids).values()),
        2 * HEARTBEAT_S + 3,
        "the resumed node to stop its streams",
    )
    owners = {s["cameraId"]: s["owner"] for s in listed_streams(nodes[1])}
    # For several heartbeats: every camera stays where it moved, exactly once.
    deadline = time.monotonic() + 6 * HEARTBEAT_S
    while time.monotonic() < deadline:
        running = runners(nodes, ids)
        assert each_runs_once(running) and not any(0 in w for w in running.values())
        time.sleep(HEARTBEAT_S / 2)
    assert {s["cameraId"]: s["owner"] for s in listed_streams(nodes[1])} == owners


def listed_streams(node: CamgateServer) -> list[dict]:  # type: ignore[type-arg]
    return node.client.get("/api/cameras").json()["data"]["streams"]  # type: ignore[no-any-return]
