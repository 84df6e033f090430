"""Authentication against the real server: every route, both roles, signed viewer URLs, the
start-up refusal, token rotation and connection limits.

The route table is read from the server's own OpenAPI schema, so a route added later without
an access level is caught here (it then needs an admin token, the safe default).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from camgate.api.auth import ViewerSigner
from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer, wait_for

pytestmark = pytest.mark.integration

ADMIN = "admin-2c6f1d0e9b8a7f65"
VIEWER = "viewer-5e4d3c2b1a09f8e7"
TOKENS = f"admin:{ADMIN},viewer:{VIEWER}"
# Routes anyone may call: liveness/readiness probes and the static pages (no data in them).
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("OPTIONS", "/hls/{camera_id}/{name}")}
PAGES = ["/", "/watch/cam", "/static/dashboard.js", "/docs", "/openapi.json"]
# Reading status, events, metrics and playback is for viewers; the rest is for admins.
VIEWER_ROUTES = {
    ("GET", "/api/streams/service"),
    ("GET", "/api/cameras"),
    ("GET", "/api/cameras/{camera_id}"),
    ("POST", "/api/cameras/{camera_id}/viewer-url"),
    ("GET", "/api/events"),
    ("GET", "/metrics"),
    ("GET", "/hls/{camera_id}/index.m3u8"),
    ("GET", "/hls/{camera_id}/{session}/init-{init_id}.mp4"),
    ("GET", "/hls/{camera_id}/{session}/seg-{msn}.m4s"),
    ("GET", "/hls/{camera_id}/{session}/part-{index}.m4s"),
    ("GET", "/api/cameras/{camera_id}/snapshot.jpg"),
    ("POST", "/whep/{camera_id}"),
    ("PATCH", "/whep/{camera_id}/{session_id}"),
    ("DELETE", "/whep/{camera_id}/{session_id}"),
    ("GET", "/watch/{camera_id}/events"),
}


def client(server: CamgateServer, token: str | None = None, **kwargs: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=10, **kwargs)


@pytest.fixture
def secured(make_server: Callable[..., CamgateServer]) -> CamgateServer:
    return make_server(CAMGATE_API_TOKENS=TOKENS, HLS_BLOCK_TIMEOUT="1")


def routes(server: CamgateServer) -> list[tuple[str, str]]:
    schema = httpx.get(server.base_url + "/openapi.json", timeout=10).json()
    found = [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "delete", "patch", "options")
    ]
    return sorted(found, key=lambda route: route[0] == "DELETE")  # deletes last


def concrete(path: str) -> str:
    values = {
        "camera_id": "cam",
        "init_id": "0",
        "msn": "0",
        "index": "0",
        "name": "x",
        "session": "0a1b2c3d4e5f",
        "session_id": "no-such-session",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def call(http: httpx.Client, method: str, path: str) -> int:
    url = concrete(path)
    if path in ("/api/events", "/watch/{camera_id}/events"):
        with http.stream("GET", url) as response:
            return response.status_code
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return http.request(method, url, json=body).status_code


def test_every_route_needs_the_right_token(secured: CamgateServer) -> None:
    admin = client(secured, ADMIN)
    created = admin.put("/api/cameras/cam", json={"rtspUrl": "rtsp://127.0.0.1:9/x"})
    assert created.status_code == 200, created.text
    table = routes(secured)
    assert len(table) >= 15, table
    unknown = [route for route in table if route not in PUBLIC | VIEWER_ROUTES]
    assert all(route[0] != "GET" for route in unknown), unknown  # reads are listed above

    anonymous, viewer, wrong = client(secured), client(secured, VIEWER), client(secured, "x" * 20)
    for method, path in table:
        where = f"{method} {path}"
        if (method, path) in PUBLIC:
            assert call(anonymous, method, path) not in (401, 403), where
            continue
        assert call(anonymous, method, path) == 401, where
        assert call(wrong, method, path) == 401, where
        as_viewer = call(viewer, method, path)
        if (method, path) in VIEWER_ROUTES:
            assert as_viewer not in (401, 403), where
        else:
            assert as_viewer == 403, where
        assert call(admin, method, path) not in (401, 403), where
    for page in PAGES:
        assert anonymous.get(page).status_code == 200, page
    assert anonymous.get("/api/cameras").headers["www-authenticate"].startswith("Bearer")


def test_viewer_token_reads_but_never_changes(secured: CamgateServer) -> None:
    admin, viewer = client(secured, ADMIN), client(secured, VIEWER)
    admin.put("/api/cameras/cam", json={"rtspUrl": "rtsp://127.0.0.1:9/x", "enabled": False})
    attempts = [
        viewer.post("/api/streams/service", json={"cameraId": "cam", "action": "stop"}),
        viewer.put("/api/cameras/cam", json={"rtspUrl": "rtsp://10.1.1.1/y"}),
        viewer.post("/api/cameras/cam/start"),
        viewer.delete("/api/cameras/cam"),
    ]
    assert [reply.status_code for reply in attempts] == [403] * 4
    status = viewer.get("/api/cameras/cam").json()["data"]
    assert status["state"] == "stopped" and status["rtspUrl"] == "rtsp://127.0.0.1:9/x"


def test_signed_viewer_urls(secured: CamgateServer, camera: RtspCamera) -> None:
    admin = client(secured, ADMIN)
    assert admin.put("/api/cameras/cam", json={"rtspUrl": camera.url}).status_code == 200
    assert admin.put("/api/cameras/other", json={"rtspUrl": camera.url}).status_code == 200
    issued = client(secured, VIEWER).post("/api/cameras/cam/viewer-url", json={"ttlSeconds": 60})
    assert issued.status_code == 200, issued.text
    data = issued.json()["data"]
    assert data["ttlSeconds"] == 60 and data["watch"].startswith(secured.base_url + "/watch/cam?")
    hls_url = httpx.URL(data["hls"])
    query = hls_url.query.decode()
    anonymous = client(secured)

    def playlist() -> str | None:
        reply = anonymous.get(f"/hls/cam/index.m3u8?{query}")
        return reply.text if reply.status_code == 200 and "#EXTINF" in reply.text else None

    text = wait_for(playlist, 30, "a signed playlist")
    uris = re.findall(r'URI="([^"]+)"', text) + [
        line for line in text.splitlines() if line and not line.startswith("#")
    ]
    assert uris and all(uri.endswith(f"?{query}") for uri in uris), text
    media = [uri for uri in uris if re.match(r"\w+/(init|seg)-", uri)]
    assert media, text
    for uri in media:
        reply = anonymous.get(f"/hls/cam/{uri}")
        assert reply.status_code == 200 and reply.content, uri
        bare = uri.split("?")[0]
        assert anonymous.get(f"/hls/cam/{bare}").status_code == 401, bare

    # The same signature for another camera, a forged one and an expired one are all refused.
    assert anonymous.get(f"/hls/other/index.m3u8?{query}").status_code == 403
    forged = re.sub(r"sig=[^&]+", "sig=" + "A" * 43, query)
    assert anonymous.get(f"/hls/cam/index.m3u8?{forged}").status_code == 403
    key = (secured.data_dir / "viewer-secret").read_bytes().strip()
    expired = ViewerSigner(key).query("cam", int(time.time()) - 5)
    reply = anonymous.get(f"/hls/cam/index.m3u8?{expired}")
    assert reply.status_code == 403 and "expired" in reply.json()["error"]
    # A signature opens playback only: never the API.
    assert anonymous.get(f"/api/cameras/cam?{query}").status_code == 401
    assert client(secured, VIEWER).post("/api/cameras/nope/viewer-url").status_code == 404


def test_open_api_on_a_network_address_refuses_to_start(tmp_path: Path) -> None:
    env = {"CAMGATE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    port = str(free_port())
    command = [sys.executable, "-m", "camgate", "serve", "--host", "0.0.0.0", "--port", port]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "CAMGATE_API_TOKENS" in lines[0], refused.stderr
    with socket.socket() as probe:  # nothing listens
        assert probe.connect_ex(("127.0.0.1", int(port))) != 0


def test_insecure_override_starts_with_a_warning(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CAMGATE_DATA_DIR": str(tmp_path / "data"),
        "CAMGATE_ALLOW_INSECURE": "1",
    }
    command = [sys.executable, "-m", "camgate", "serve", "--host", "0.0.0.0", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )

    def healthy() -> bool:
        assert process.poll() is None, "camgate exited"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, 30, "the open server to answer")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert "WITHOUT authentication" in output


def test_token_file_rotation_without_restart(
    make_server: Callable[..., CamgateServer], tmp_path: Path
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# camgate tokens\nadmin:{ADMIN}\n")
    path.chmod(0o600)
    server = make_server(CAMGATE_API_TOKENS_FILE=str(path))
    old = client(server, ADMIN)
    assert old.get("/api/cameras").status_code == 200
    new_token = "rotated-" + "9" * 20
    path.write_text(f"admin:{new_token}\n")
    wait_for(lambda: old.get("/api/cameras").status_code == 401, 10, "the old token to stop")
    assert client(server, new_token).get("/api/cameras").status_code == 200


def test_slow_clients_cannot_hold_connections(make_server: Callable[..., CamgateServer]) -> None:
    server = make_server(REQUEST_HEADER_TIMEOUT="2", MAX_CONNECTIONS="100")
    sockets: list[socket.socket] = []
    try:
        for _ in range(150):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            conn.sendall(b"GET /api/cameras HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            sockets.append(conn)
        started = time.monotonic()

        def all_closed() -> bool:
            return all(_closed_by_peer(conn) for conn in sockets)

        wait_for(all_closed, 15, "the server to drop half-sent requests")
        assert time.monotonic() - started < 12
        assert server.client.get("/api/cameras").status_code == 200
    finally:
        for conn in sockets:
            conn.close()


def _closed_by_peer(conn: socket.socket) -> bool:
    conn.setblocking(False)
    try:
        return conn.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    with RtspCamera(port=free_port(), gop_s=1.0) as cam:
        yield cam


def rss_bytes(pid: int) -> int:
    fields = Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0]) * 1024


def send_until_answered(conn: socket.socket, pieces: Iterator[bytes]) -> bytes:
    """Send `pieces` until the server answers or stops reading; return its reply head."""
    reply = b""
    conn.setblocking(False)
    for piece in pieces:
        with contextlib.suppress(BlockingIOError):
            reply += conn.recv(4096)
        if b"\r\n\r\n" in reply:
            break
        try:
            conn.setblocking(True)
            conn.sendall(piece)
            conn.setblocking(False)
        except OSError:
            break  # the server closed the connection
    conn.settimeout(5)
    while b"\r\n\r\n" not in reply and (data := conn.recv(4096)):
        reply += data
    return reply


def test_ten_megabyte_body_is_refused_fast(server: CamgateServer) -> None:
    assert server.process is not None
    before = rss_bytes(server.process.pid)
    chunk = b"x" * 65536
    bodies = {
        b"Content-Length: 10485760": (chunk for _ in range(160)),
        b"Transfer-Encoding: chunked": (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(160)),
    }
    for framing, pieces in bodies.items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(
                b"PUT /api/cameras/big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n"
            )
            started = time.monotonic()
            reply = send_until_answered(conn, pieces)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert time.monotonic() - started < 2.0, framing
    assert rss_bytes(server.process.pid) - before < 30 * 1024 * 1024
    assert server.client.get("/api/cameras/big").status_code == 404


def test_browser_attacks_on_the_real_server_are_refused(
    make_server: Callable[..., CamgateServer],
) -> None:
    server = make_server()  # no token: the open loopback API a malicious page would target
    api = server.client
    assert api.put(
        "/api/cameras/cam", json={"rtspUrl": "rtsp://127.0.0.1:9/x", "enabled": False}
    ).is_success
    evil = "https://evil.example"
    forms = [
        {"headers": {"content-type": "application/x-www-form-urlencoded", "origin": evil}},
        {"headers": {"content-type": "text/plain", "origin": evil}, "content": b"x"},
        {"headers": {"content-type": "text/plain"}, "content": b"x"},  # a browser without Origin
    ]
    for form in forms:
        for action in ("start", "stop", "restart"):
            reply = api.post(f"/api/cameras/cam/{action}", **form)  # type: ignore[arg-type]
            assert reply.status_code in (403, 415), (action, form, reply.text)
    rebound = api.get("/api/cameras", headers={"host": "rebind.attacker.example:8080"})
    assert rebound.status_code == 403 and "CAMGATE_ALLOWED_HOSTS" in rebound.json()["error"]
    hls = api.get("/hls/cam/index.m3u8", headers={"origin": evil})
    assert "access-control-allow-origin" not in hls.headers
    page = api.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert server.status("cam")["state"] == "stopped"  # nothing was started
