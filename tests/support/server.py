"""A real `camgate serve` process for integration tests, on its own port and data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

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


def pids_with_arg(fragment: str, name: str = "ffmpeg") -> list[int]:
    """Pids of live (non-zombie) `name` processes whose command line contains `fragment`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or not argv or name not in Path(argv[0].decode(errors="replace")).name:
            continue
        if any(fragment.encode() in arg for arg in argv):
            found.append(int(entry.name))
    return found


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
