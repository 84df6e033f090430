"""One camgate per data directory and per port, refused before any camera is pulled."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.camera import RtspCamera
from tests.support.ports import free_port
from tests.support.server import CamgateServer, ffmpeg_pids

pytestmark = pytest.mark.integration


def serve(data_dir: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAMGATE_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "camgate", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_a_second_instance_is_refused_with_one_line(
    make_server: Callable[..., CamgateServer], camera: RtspCamera, tmp_path: Path
) -> None:
    first = make_server()
    assert first.client.put("/api/cameras/door", json={"rtspUrl": camera.url}).is_success
    first.wait_state("door", {"running"}, 30)

    same_dir = serve(first.data_dir, free_port())
    assert same_dir.returncode == 2
    lines = same_dir.stderr.strip().splitlines()
    assert len(lines) == 1 and "another camgate" in lines[0], same_dir.stderr
    assert first.process is not None and str(first.process.pid) in lines[0]

    # Another data directory holding the same camera, but the port is taken: nothing pulled.
    other = tmp_path / "other"
    copy = make_server(data_dir=other)
    assert copy.client.put("/api/cameras/door", json={"rtspUrl": camera.url}).is_success
    copy.stop()
    taken = serve(other, first.port)
    assert taken.returncode == 2
    lines = taken.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{first.port}" in lines[0], lines
    assert "starting" not in taken.stderr and "ffmpeg" not in taken.stderr.lower()
    assert len(ffmpeg_pids(first.process.pid, "door")) == 1
    assert first.status("door")["state"] == "running"
