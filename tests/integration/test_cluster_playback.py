"""Playback on any node of a fleet: a camera run by node A plays through node B (proxy mode)
and through node C (redirect mode), over every output, with tokens and signed viewer URLs.

A database restart interrupts no viewer, even one whose stream is relayed. One fleet for the
module: A runs the only camera, B and C run nothing. "Runs" means an FFmpeg child pulling the
camera, read from /proc: B and C must never start one of their own.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect

from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from tests.support.browser import launch_chromium, watch
from tests.support.camera import RtspCamera
from tests.support.fleet import (
    VIEWER_SECRET,
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

ADMIN = "fleet-admin-token-0123456789abcdef"
VIEWER = "fleet-viewer-token-0123456789abcdef"
CAMERA = "door"
TTL_S = 6.0  # nothing here waits for a lease to end; a database restart must stay shorter
HEARTBEAT_S = 0.5
START_S = 20.0  # FFmpeg connects to the test camera and writes its first parts (2 shared cores)
MESSAGE_TIMEOUT_S = 10.0
PLAY_S = 1.0  # how long a browser test watches
PART_URI = re.compile(r'#EXT-X-PART:[^\n]*URI="([^"]+)"')
HINT_URI = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"')


class Fleet:
    """Node A runs the camera; B relays every playback request; C redirects where it can."""

    def __init__(self, postgres: PostgresServer, camera: RtspCamera, nodes: list[CamgateServer]):
        self.postgres, self.camera = postgres, camera
        self.owner, self.proxy, self.redirect = nodes
        self.nodes = nodes


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("playback")
    with PostgresServer() as postgres, RtspCamera(port=free_port(), gop_s=1.0) as camera:
        url = fresh_database(postgres)
        nodes = [
            fleet_node(root, url, "node-a", "redirect"),
            fleet_node(root, url, "node-b", "proxy"),
            fleet_node(root, url, "node-c", "redirect"),
        ]
        try:
            # A claims the camera alone; B and C start meanwhile and find it held.
            nodes[0].start()
            reply = nodes[0].client.put(f"/api/cameras/{CAMERA}", json={"rtspUrl": camera.url})
            assert reply.status_code == 200, reply.text
            wait_for(lambda: owner_of(nodes[0]) == "node-a", 10, "A to claim the camera")
            start_nodes(nodes[1:])
            for node in nodes:
                wait_for(lambda n=node: owner_of(n) == "node-a", 10, "every node to know the owner")
            wait_for(lambda: nodes[0].client.get(playlist()).status_code == 200, START_S, "HLS")
            yield Fleet(postgres, camera, nodes)
        finally:
            stop_nodes(nodes)


def fleet_node(root: Path, database_url: str, name: str, playback: str) -> CamgateServer:
    env = node_env(database_url, name, TTL_S, HEARTBEAT_S) | {
        "CAMGATE_API_TOKENS": f"admin:{ADMIN},viewer:{VIEWER}",
        "CAMGATE_CLUSTER_PLAYBACK": playback,
        "CAMGATE_REBALANCE_MOVES": "0",
    }
    node = CamgateServer(free_port(), root / name, env)
    node.client.headers["Authorization"] = f"Bearer {ADMIN}"
    return node


def owner_of(node: CamgateServer) -> str | None:
    streams = node.client.get("/api/cameras").json()["data"]["streams"]
    return next((s.get("owner") for s in streams if s["cameraId"] == CAMERA), None)


def viewer(node: CamgateServer, **options: object) -> httpx.Client:
    """A player with the viewer token, as the dashboard and the player page send it."""
    return httpx.Client(
        base_url=node.base_url,
        headers={"Authorization": f"Bearer {VIEWER}"},
        timeout=20,
        **options,  # type: ignore[arg-type]
    )


def signed_query(node: CamgateServer) -> str:
    """A signed viewer URL's query, asked of `node` (any node signs for the whole fleet)."""
    reply = node.client.post(f"/api/cameras/{CAMERA}/viewer-url", json={"ttlSeconds": 600})
    assert reply.status_code == 200, reply.text
    return urlsplit(reply.json()["data"]["hls"]).query


def playlist(query: str = "") -> str:
    return f"/hls/{CAMERA}/index.m3u8" + (f"?{query}" if query else "")


def media_uri(playlist_path: str, uri: str) -> str:
    """A playlist's relative media URI as a path on the same node."""
    return playlist_path.rsplit("/", 1)[0].split("?")[0] + "/" + uri


def is_jpeg(reply: httpx.Response) -> bool:
    return reply.headers["content-type"] == "image/jpeg" and reply.content[:2] == b"\xff\xd8"


async def mse_media(url: str) -> tuple[dict[str, object], list[Fragment]]:
    """What a browser's MSE player gets from `url`: the announcement and a second of fragments."""
    async with connect(url, max_size=None) as ws:
        announcement = json.loads(await asyncio.wait_for(ws.recv(), MESSAGE_TIMEOUT_S))
        data = [await asyncio.wait_for(ws.recv(), MESSAGE_TIMEOUT_S) for _ in range(26)]
    assert all(isinstance(message, bytes) for message in data)
    items = Fmp4Reader().feed(b"".join(data))  # type: ignore[arg-type]
    assert isinstance(items[0], InitSegment)
    return announcement, [item for item in items if isinstance(item, Fragment)]


async def whep_offer() -> str:
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


def test_a_proxy_node_plays_hls_a_part_a_snapshot_and_webrtc_of_a_camera_it_does_not_run(
    fleet: Fleet,
) -> None:
    with viewer(fleet.proxy) as player:
        reply = player.get(playlist())
        assert reply.status_code == 200, reply.text
        text = reply.text
        assert text.startswith("#EXTM3U") and "#EXT-X-PART:" in text
        assert "sig=" not in text  # the same playlist a single node gives a token holder
        part = player.get(media_uri(playlist(), PART_URI.findall(text)[-1]))
        assert part.status_code == 200 and part.headers["content-type"] == "video/mp4"
        assert len(part.content) > 100
        # The preload-hinted part does not exist yet: the request blocks until it does.
        hinted = player.get(media_uri(playlist(), HINT_URI.findall(text)[-1]))
        assert hinted.status_code == 200 and len(hinted.content) > 100

        assert is_jpeg(player.get(f"/api/cameras/{CAMERA}/snapshot.jpg?width=320"))
        assert player.get(f"/api/cameras/{CAMERA}/snapshot.jpg?width=9").status_code == 400

        offer = asyncio.run(whep_offer())
        answer = player.post(
            f"/whep/{CAMERA}", content=offer, headers={"Content-Type": "application/sdp"}
        )
        assert answer.status_code == 201, answer.text
        assert answer.headers["content-type"].startswith("application/sdp")
        assert answer.text.startswith("v=0")
        session = answer.headers["location"]
        assert session.startswith(f"/whep/{CAMERA}/") and "sig=" not in session
        assert player.delete(session).status_code == 200

    # Without a token or signature the proxy refuses by itself: nothing is relayed.
    assert httpx.get(fleet.proxy.base_url + playlist()).status_code == 401
    assert runners(fleet.nodes, [CAMERA]) == {CAMERA: [0]}  # only A ever pulls the camera


def test_a_proxy_node_relays_the_mse_websocket_with_a_url_another_node_signed(
    fleet: Fleet,
) -> None:
    query = signed_query(fleet.redirect)  # signed by C, played on B, served by A
    url = f"ws://127.0.0.1:{fleet.proxy.port}/ws/{CAMERA}?{query}"
    announcement, fragments = asyncio.run(mse_media(url))
    assert announcement["type"] == "init"
    assert str(announcement["codecs"]).startswith("avc1.")
    assert fragments and fragments[0].keyframe  # the first picture is immediate
    assert runners(fleet.nodes, [CAMERA]) == {CAMERA: [0]}


def test_a_redirect_node_sends_signed_players_and_the_player_page_to_the_owner(
    fleet: Fleet,
) -> None:
    query = signed_query(fleet.proxy)
    owner = fleet.owner.base_url
    anonymous = httpx.Client(base_url=fleet.redirect.base_url, timeout=20)
    with anonymous:
        reply = anonymous.get(playlist(f"ll=0&{query}"))
        assert reply.status_code == 307
        assert reply.headers["location"] == f"{owner}{playlist(f'll=0&{query}')}"
        followed = httpx.get(reply.headers["location"], timeout=20)
        assert followed.status_code == 200 and f"?{query}" in followed.text

        snapshot = anonymous.get(f"/api/cameras/{CAMERA}/snapshot.jpg?{query}")
        assert snapshot.status_code == 307
        assert is_jpeg(httpx.get(snapshot.headers["location"], timeout=30))

        page = anonymous.get(f"/watch/{CAMERA}?{query}")
        assert page.status_code == 307
        assert page.headers["location"] == f"{owner}/watch/{CAMERA}?{query}"
        # Without a signature the page plays here (its requests are then relayed).
        assert anonymous.get(f"/watch/{CAMERA}").status_code == 200
        assert anonymous.get(f"/watch/{CAMERA}?exp=1&sig=forged").status_code == 200

    # A token cannot follow a redirect to another host: it is relayed instead, never sent on.
    with viewer(fleet.redirect) as player:
        relayed = player.get(playlist("ll=0"))
        assert relayed.status_code == 200 and relayed.text.startswith("#EXTM3U")
    # Browsers do not follow a WebSocket redirect: the socket is relayed.
    url = f"ws://127.0.0.1:{fleet.redirect.port}/ws/{CAMERA}?{query}"
    announcement, fragments = asyncio.run(mse_media(url))
    assert announcement["type"] == "init" and fragments[0].keyframe
    assert runners(fleet.nodes, [CAMERA]) == {CAMERA: [0]}


def test_a_database_restart_interrupts_no_viewer_and_readyz_tells_while_it_is_down(
    fleet: Fleet,
) -> None:
    pid = fleet.owner.status(CAMERA)["pid"]
    assert all(node.client.get("/readyz").status_code == 200 for node in fleet.nodes)
    url = f"ws://127.0.0.1:{fleet.proxy.port}/ws/{CAMERA}?{signed_query(fleet.proxy)}"
    during, after = asyncio.run(watch_through_restart(url, fleet))
    assert during > 0 and after > 0  # media kept flowing through the relay, and still does
    # No stream was restarted (same FFmpeg), and a camera added afterwards gets placed.
    assert fleet.owner.status(CAMERA)["pid"] == pid
    late = fleet.redirect.client.put("/api/cameras/late", json={"rtspUrl": fleet.camera.url})
    assert late.status_code == 200, late.text
    wait_for(lambda: len(runners(fleet.nodes, ["late"])["late"]) == 1, START_S, "late to run")
    assert fleet.redirect.client.delete("/api/cameras/late").status_code == 200
    wait_for(lambda: not runners(fleet.nodes, ["late"])["late"], 10, "late to stop")


async def watch_through_restart(url: str, fleet: Fleet) -> tuple[int, int]:
    """Restart PostgreSQL while an MSE viewer watches; the fragments it got while the database
    was down, and after it was back (the socket must stay open throughout)."""

    def ready(status: int) -> bool:
        return all(node.client.get("/readyz").status_code == status for node in fleet.nodes)

    async with connect(url, max_size=None) as ws:
        received = [0]

        async def count() -> None:
            async for _ in ws:
                received[0] += 1

        reader = asyncio.create_task(count())
        await asyncio.to_thread(wait_for, lambda: received[0] > 2, MESSAGE_TIMEOUT_S, "media")
        await asyncio.to_thread(fleet.postgres.stop)
        stopped_at = received[0]
        try:
            await asyncio.to_thread(wait_for, lambda: ready(503), 5, "readyz to fail")
            await asyncio.to_thread(wait_for, lambda: received[0] > stopped_at, 5, "media")
        finally:
            await asyncio.to_thread(fleet.postgres.start)
        back_at = received[0]
        await asyncio.to_thread(wait_for, lambda: ready(200), 10, "readyz to pass again")
        await asyncio.to_thread(wait_for, lambda: received[0] > back_at, 5, "media")
        assert not reader.done()  # the viewer's socket was never closed
        reader.cancel()
    return back_at - stopped_at, received[0] - back_at


def test_no_node_logs_a_token_the_secret_or_a_signature(fleet: Fleet) -> None:
    for node in fleet.nodes:
        log = Path(node.log_path).read_text(errors="replace")
        for secret in (ADMIN, VIEWER, VIEWER_SECRET):
            assert secret not in log, f"{secret[:8]}... in {node.base_url}'s log"
        assert not re.search(r"sig=(?!\*\*\*)", log), f"a signature in {node.base_url}'s log"


@pytest.mark.browser
async def test_a_browser_with_a_token_plays_the_player_page_of_a_node_that_does_not_run_it(
    fleet: Fleet,
) -> None:
    # The token is kept for this node's origin only: even in redirect mode the page stays where
    # it was opened, and its MSE WebSocket is relayed to the owner. (A signed link would move
    # the page to the owner: see the redirect test.)
    async with launch_chromium() as chromium:
        context = await chromium.new_context()
        await context.add_init_script(f"localStorage.setItem('camgate.apiToken', '{VIEWER}')")
        page = await context.new_page()
        watch_url = f"{fleet.redirect.base_url}/watch/{CAMERA}?mode=mse"
        report = await watch(page, watch_url, PLAY_S)
        assert report.started, report.errors
        assert page.url == watch_url
        assert report.player_stats["mode"] == "mse" and report.advanced_s > PLAY_S / 2
        await context.close()
    assert runners(fleet.nodes, [CAMERA]) == {CAMERA: [0]}
