"""A real `camgate serve` process for integration tests, on its own port and data directory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from camgate.ffmpeg import CAMERA_MARKER

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - keep polling, report the last one
            last_error = error
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last_error})")


def process_children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _live_argv(pid: int) -> list[bytes] | None:
    """The command line of `pid`, or None if it is gone or a zombie."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return None if state == "Z" else argv


def ffmpeg_pids(parent_pid: int, camera_id: str | None = None) -> list[int]:
    """Live FFmpeg children of `parent_pid` (a camgate server, or this process when camgate
    runs as a library); with `camera_id`, only the one streaming that camera, which names it
    in its argv (`-metadata camgate_camera=ID`, never the camera URL)."""
    marker = f"{CAMERA_MARKER}={camera_id}".encode()
    found = []
    for pid in process_children(parent_pid):
        argv = _live_argv(pid)
        if not argv or "ffmpeg" not in Path(argv[0].decode(errors="replace")).name:
            continue
        if camera_id is None or marker in argv:
            found.append(pid)
    return found


def ffmpeg_cmdlines(parent_pid: int) -> list[str]:
    """The command lines of `parent_pid`'s live FFmpeg children, as `ps` shows them."""
    lines = (_live_argv(pid) for pid in ffmpeg_pids(parent_pid))
    return [b" ".join(argv).decode(errors="replace") for argv in lines if argv]


def _tcp_inodes_to(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()  # sl local_address rem_address st ... uid timeout inode
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def pids_connected_to(port: int) -> list[int]:
    """Live processes, whoever started them, holding a TCP connection to `port` on this host:
    what pulls a test camera, orphans included."""
    sockets = {f"socket:[{inode}]" for inode in _tcp_inodes_to(port)}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or _live_argv(int(entry.name)) is None:
            continue
        if _fd_targets(entry) & sockets:
            found.append(int(entry.name))
    return found


def _fd_targets(process: Path) -> set[str]:
    targets = set()
    try:
        fds = list((process / "fd").iterdir())
    except OSError:
        return targets
    for fd in fds:
        with contextlib.suppress(OSError):  # closed meanwhile
            targets.add(os.readlink(fd))
    return targets


class CamgateServer:
    """Runs `python -m camgate serve` with the given environment; use as a context manager."""

    def __init__(self, port: int, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.data_dir = data_dir
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "CAMGATE_DATA_DIR": str(data_dir),
            "LOG_LEVEL": "debug",
            "STOP_TIMEOUT": "3",
            **(env or {}),
        }
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.base_url, timeout=20)

    def start(self, timeout_s: float = 30) -> CamgateServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "camgate",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._healthy, timeout_s, "camgate to answer /healthz")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"camgate exited {self.process.returncode}:\n{self.log()}")
        try:
            return self.client.get("/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def __enter__(self) -> CamgateServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
        self.client.close()

    # ----- API helpers -----------------------------------------------------------------------
    def service(self, **body: Any) -> httpx.Response:
        return self.client.post("/api/streams/service", json=body)

    def status(self, camera_id: str) -> dict[str, Any]:
        response = self.client.get("/api/streams/service", params={"cameraId": camera_id})
        response.raise_for_status()
        data: dict[str, Any] = response.json()["data"]
        return data

    def wait_state(self, camera_id: str, states: set[str], timeout_s: float) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(camera_id)
            return status if status["state"] in states else None

        return wait_for(reached, timeout_s, f"{camera_id} to reach {sorted(states)}")


def streaming_server(
    make_server: Callable[..., CamgateServer],
    camera_url: str,
    camera_id: str,
    token: str | None = None,
    timeout_s: float = 40.0,
    **env: str,
) -> CamgateServer:
    """A server (from the `make_server` fixture) already running `camera_id`; with `token`, its
    client sends it on every request."""
    server = make_server(**env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = server.client.post(
        "/api/streams/service",
        json={"cameraId": camera_id, "rtspUrl": camera_url, "action": "start"},
        headers=headers,
    )
    assert reply.status_code == 200, reply.text
    server.client.headers.update(headers)
    server.wait_state(camera_id, {"running"}, timeout_s)
    return server
