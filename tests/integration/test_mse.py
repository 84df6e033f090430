"""MSE over WebSocket as a client sees it, from a real test camera through a real camgate server.

A WebSocket client (the ``websockets`` package) reads ``/ws/<id>`` the way the browser player
does; what it receives is written to a file and decoded by Debian's ffmpeg/ffprobe. A client
that stops reading must be dropped while the server's memory stays flat, and with tokens
configured the socket needs a signed viewer URL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from camgate.fmp4 import Fmp4Reader, Fragment, InitSegment
from tests.integration.media import decoded_frames, probe_streams
from tests.support.camera import RtspCamera
from tests.support.server import CamgateServer, streaming_server, wait_for

pytestmark = pytest.mark.integration

CAMERA_ID = "mse-cam"
RUNNING_TIMEOUT_S = 40.0
RECEIVE_S = 3.0
MESSAGE_TIMEOUT_S = 10.0
FPS = 25
ADMIN = "admin-5c2b7e9d1a3f4e6b"
# The stalled client: a tiny queue so that it overflows within seconds, and a tiny receive
# buffer so the kernel does not soak up megabytes first.
SMALL_QUEUE_BYTES = 16384
TINY_RCVBUF = 4096
SMALL_SEGMENT_BYTES = 536  # RFC 9293 3.7.1: the default MSS
DROP_TIMEOUT_S = 60.0
MAX_RSS_GROWTH_KB = 30_000
MAX_FRAME_BYTES = 1_000_000  # a queue over its bound holds at most one more fragment


def running_server(
    make_server: Callable[..., CamgateServer], camera: RtspCamera, **env: str
) -> CamgateServer:
    token = ADMIN if "CAMGATE_API_TOKENS" in env else None
    return streaming_server(make_server, camera.url, CAMERA_ID, token, RUNNING_TIMEOUT_S, **env)


def ws_url(server: CamgateServer, camera_id: str = CAMERA_ID, query: str = "") -> str:
    url = f"ws://127.0.0.1:{server.port}/ws/{camera_id}"
    return f"{url}?{query}" if query else url


async def receive_media(
    ws: ClientConnection, seconds: float
) -> tuple[dict[str, Any], bytes, list[bytes]]:
    """The init announcement, the init segment and the fragments of the next ``seconds``."""
    announcement = json.loads(await asyncio.wait_for(ws.recv(), MESSAGE_TIMEOUT_S))
    init = await asyncio.wait_for(ws.recv(), MESSAGE_TIMEOUT_S)
    assert isinstance(init, bytes)
    fragments: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        message = await asyncio.wait_for(ws.recv(), MESSAGE_TIMEOUT_S)
        assert isinstance(message, bytes), message
        fragments.append(message)
    return announcement, init, fragments


@contextmanager
def stalled_socket(port: int, path: str) -> Iterator[socket.socket]:
    """A WebSocket that completes its handshake and then never reads another byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connecting: a fixed small receive window, and a small segment size, because the
    # server's kernel sizes its send buffer in segments (64 KiB each on loopback otherwise).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TINY_RCVBUF)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, SMALL_SEGMENT_BYTES)
    sock.settimeout(MESSAGE_TIMEOUT_S)
    try:
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)  # byte by byte: read nothing beyond the handshake
        assert head.startswith(b"HTTP/1.1 101"), head
        yield sock
    finally:
        sock.close()


def mse_stats(server: CamgateServer) -> dict[str, Any]:
    outputs: dict[str, Any] = server.status(CAMERA_ID)["outputs"]
    return dict(outputs["mse"])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def test_a_client_receives_init_and_fragments_that_ffmpeg_decodes(
    make_server: Callable[..., CamgateServer], camera: RtspCamera, tmp_path: Path
) -> None:
    server = running_server(make_server, camera)

    async with connect(ws_url(server)) as ws:
        announcement, init, fragments = await receive_media(ws, RECEIVE_S)
        assert mse_stats(server)["clients"] == 1

    assert announcement["type"] == "init"
    assert announcement["codecs"].startswith("avc1.")
    assert announcement["mime"] == f'video/mp4; codecs="{announcement["codecs"]}"'
    assert (announcement["width"], announcement["height"]) == (640, 360)
    items = Fmp4Reader().feed(init + b"".join(fragments))
    assert isinstance(items[0], InitSegment) and items[0].codecs == announcement["codecs"]
    media = [item for item in items[1:] if isinstance(item, Fragment)]
    assert len(media) == len(fragments)
    assert media[0].keyframe, "the first fragment must start with a keyframe"
    path = tmp_path / "received.mp4"
    path.write_bytes(init + b"".join(fragments))
    assert [s["codec_name"] for s in probe_streams(path)] == ["h264"]
    assert decoded_frames(path) >= (RECEIVE_S - 1) * FPS
    wait_for(lambda: mse_stats(server)["clients"] == 0, 10, "the closed client to be forgotten")
    assert mse_stats(server)["bytesSent"] >= len(init) + sum(map(len, fragments))


async def test_an_unknown_camera_is_closed_with_a_reason(
    make_server: Callable[..., CamgateServer],
) -> None:
    server = make_server()

    async with connect(ws_url(server, "nope")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), MESSAGE_TIMEOUT_S)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
    assert "no stream" in closed.value.rcvd.reason


async def test_a_client_that_stops_reading_is_dropped_and_memory_stays_bounded(
    make_server: Callable[..., CamgateServer], camera: RtspCamera
) -> None:
    server = running_server(make_server, camera, MSE_CLIENT_QUEUE_BYTES=str(SMALL_QUEUE_BYTES))
    assert server.process is not None
    with stalled_socket(server.port, f"/ws/{CAMERA_ID}"):
        rss_before_kb = rss_kb(server.process.pid)
        async with connect(ws_url(server)) as reader:  # a viewer that keeps up meanwhile
            deadline = time.monotonic() + DROP_TIMEOUT_S
            peak_queued = 0
            while (stats := mse_stats(server))["clientsDropped"] == 0:
                assert time.monotonic() < deadline, json.dumps(stats)
                peak_queued = max(peak_queued, stats["bytesQueued"])
                await asyncio.wait_for(reader.recv(), MESSAGE_TIMEOUT_S)
            rss_after_kb = rss_kb(server.process.pid)
            assert stats["clients"] == 1, stats  # only the reader is left
            assert stats["queueOverflows"] >= 3 and stats["queueDrops"] > 0
            assert isinstance(await asyncio.wait_for(reader.recv(), MESSAGE_TIMEOUT_S), bytes)

    assert peak_queued <= SMALL_QUEUE_BYTES + MAX_FRAME_BYTES
    assert rss_after_kb - rss_before_kb < MAX_RSS_GROWTH_KB
    metrics = server.client.get("/metrics").text
    assert f'camgate_output_viewers{{camera="{CAMERA_ID}",output="mse"}}' in metrics


async def test_with_tokens_the_socket_needs_a_signed_url(
    make_server: Callable[..., CamgateServer], camera: RtspCamera
) -> None:
    server = running_server(make_server, camera, CAMGATE_API_TOKENS=f"admin:{ADMIN}")

    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server)):
            pass
    assert refused.value.response.status_code == 403
    issued = server.client.post(f"/api/cameras/{CAMERA_ID}/viewer-url", json={"ttlSeconds": 60})
    signed = issued.json()["data"]["hls"].split("?", 1)[1]
    async with connect(ws_url(server, query=signed)) as ws:
        announcement, _, fragments = await receive_media(ws, 1.0)
    assert announcement["type"] == "init" and fragments
    with pytest.raises(InvalidStatus):
        async with connect(ws_url(server, query=signed.replace("sig=", "sig=x"))):
            pass
