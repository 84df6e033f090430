"""The camera file is the source of truth: applied at start, again on SIGHUP and when the file
changes, touching only what changed; an invalid file changes nothing."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.camera import RtspCamera
from tests.support.server import CamgateServer, wait_for

pytestmark = pytest.mark.integration


def write(path: Path, cameras: dict[str, dict[str, Any]]) -> None:
    lines = ["cameras:"]
    for camera_id, fields in cameras.items():
        lines.append(f"  {camera_id}:")
        lines.extend(f"    {key}: {value}" for key, value in fields.items())
    path.write_text("\n".join(lines) + "\n")


def pid_of(server: CamgateServer, camera_id: str) -> int | None:
    pid: int | None = server.status(camera_id)["pid"]
    return pid


def test_the_file_wins_and_reloads_touch_only_what_changed(
    make_server: Callable[..., CamgateServer], camera: RtspCamera, tmp_path: Path
) -> None:
    path = tmp_path / "cameras.yml"
    write(path, {"keep": {"rtspUrl": camera.url}, "change": {"rtspUrl": camera.url}})
    server = make_server(CAMGATE_CONFIG=str(path))
    for camera_id in ("keep", "change"):
        status = server.wait_state(camera_id, {"running"}, 30)
        assert status["source"] == "file"
    api_made = server.client.put("/api/cameras/mine", json={"rtspUrl": camera.url})
    assert api_made.json()["data"]["source"] == "api"
    kept_pid, changed_pid = pid_of(server, "keep"), pid_of(server, "change")

    # Change one, remove none yet, add one; told by SIGHUP.
    write(
        path,
        {
            "keep": {"rtspUrl": camera.url},
            "change": {"rtspUrl": camera.url, "overrides": "{audio: none}"},
            "added": {"rtspUrl": camera.url, "onDemand": "true"},
        },
    )
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: server.client.get("/api/cameras/added").status_code == 200, 10, "added")
    assert server.status("added")["state"] == "idle"
    server.wait_state("change", {"running"}, 30)
    wait_for(lambda: pid_of(server, "change") not in (None, changed_pid), 30, "a restart")
    assert server.status("change")["overrides"] == {"audio": "none"}
    assert pid_of(server, "keep") == kept_pid  # untouched

    # An invalid file: refused whole, nothing changes.
    path.write_text("cameras:\n  keep:\n    rtspUrl: http://not-rtsp\n")
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "camera file not applied" in server.log(), 10, "the refusal logged")
    assert ":3: cameras.keep.rtspUrl" in server.log()
    assert pid_of(server, "keep") == kept_pid and server.status("added")["state"] == "idle"

    # Removed from the file (noticed without a signal): stopped and forgotten; API cameras stay.
    write(path, {"keep": {"rtspUrl": camera.url}})
    wait_for(lambda: server.client.get("/api/cameras/change").status_code == 404, 15, "removal")
    assert server.client.get("/api/cameras/added").status_code == 404
    assert server.status("mine")["state"] == "running"
    assert pid_of(server, "keep") == kept_pid

    # After a restart of camgate the file still decides.
    server.stop()
    write(path, {"later": {"rtspUrl": camera.url, "enabled": "false"}})
    again = make_server(data_dir=server.data_dir, CAMGATE_CONFIG=str(path))
    names = {s["cameraId"] for s in again.client.get("/api/cameras").json()["data"]["streams"]}
    assert names == {"later", "mine"}
    assert again.status("later")["state"] == "stopped"
