"""On-demand cameras: how long the first viewer of an idle camera waits, against a camera that
is already pulled (the baseline), measured in one run.

For each round the on-demand camera is first let go idle (ON_DEMAND_IDLE_S without viewers, FFmpeg
gone), then:
  * HTTP: the first playlist request (it wakes the camera and is answered once playable), then
    the first part it lists;
  * Chromium: the player page from page load to the first decoded frame, over MSE and LL-HLS.
The same two figures for an always-on camera give the baseline. The camera has a 2 s GOP, so a
cold start waits up to one GOP for a keyframe.

    .venv/bin/python bench/on_demand/run.py [--rounds 6]

Not a test: it prints figures. Everything runs on 127.0.0.1 and is cleaned up on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.browser import launch_chromium, watch  # noqa: E402
from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.server import CamgateServer, wait_for  # noqa: E402

IDLE_S = 1


def first_playlist_s(server: CamgateServer, camera_id: str) -> tuple[float, float]:
    """(seconds to a playable playlist, seconds to its first part) from the first request."""
    started = time.monotonic()
    reply = server.client.get(f"/hls/{camera_id}/index.m3u8", timeout=30)
    playlist_s = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    part = re.search(r'URI="((?:\w+/)?part-\d+\.m4s)"', reply.text)
    assert part is not None, reply.text
    assert server.client.get(f"/hls/{camera_id}/{part.group(1)}").status_code == 200
    return playlist_s, time.monotonic() - started


async def first_frame_s(server: CamgateServer, camera_id: str, mode: str) -> float:
    async with launch_chromium() as browser:
        page = await browser.new_page()
        report = await watch(page, f"{server.base_url}/watch/{camera_id}?mode={mode}", 1.0)
        assert report.started and report.startup_s is not None, report.errors
        return report.startup_s


def wait_idle(server: CamgateServer, camera_id: str) -> None:
    server.wait_state(camera_id, {"idle"}, IDLE_S + 20)
    wait_for(lambda: server.status(camera_id)["pid"] is None, 10, "FFmpeg to exit")


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} median {statistics.median(values):.2f} s  "
        f"min {min(values):.2f}  max {max(values):.2f}  (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    keys = ("pl", "part", "mse", "ll", "b_pl", "b_mse", "b_ll")
    results: dict[str, list[float]] = {key: [] for key in keys}
    with (
        tempfile.TemporaryDirectory() as tmp,
        RtspCamera(port=free_port(), gop_s=2.0) as camera,
        CamgateServer(free_port(), Path(tmp), {"ON_DEMAND_IDLE_S": str(IDLE_S)}) as server,
    ):
        for camera_id, on_demand in (("lazy", True), ("always", False)):
            body = {"rtspUrl": camera.url, "onDemand": on_demand, "overrides": {"audio": "none"}}
            assert server.client.put(f"/api/cameras/{camera_id}", json=body).is_success
        server.wait_state("always", {"running"}, 30)
        for _ in range(args.rounds):
            wait_idle(server, "lazy")
            playlist_s, part_s = first_playlist_s(server, "lazy")
            results["pl"].append(playlist_s)
            results["part"].append(part_s)
            for mode in ("mse", "ll"):
                wait_idle(server, "lazy")
                results[mode].append(asyncio.run(first_frame_s(server, "lazy", mode)))
                results[f"b_{mode}"].append(asyncio.run(first_frame_s(server, "always", mode)))
            results["b_pl"].append(first_playlist_s(server, "always")[0])
    print("on-demand camera, idle when the viewer arrives (2 s GOP):")
    print("  " + summary("first request -> playable playlist", results["pl"]))
    print("  " + summary("first request -> first part", results["part"]))
    print("  " + summary("page load -> first frame (MSE)", results["mse"]))
    print("  " + summary("page load -> first frame (LL-HLS)", results["ll"]))
    print("baseline: a camera already pulled:")
    print("  " + summary("request -> playlist", results["b_pl"]))
    print("  " + summary("page load -> first frame (MSE)", results["b_mse"]))
    print("  " + summary("page load -> first frame (LL-HLS)", results["b_ll"]))


if __name__ == "__main__":
    main()
