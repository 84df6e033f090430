"""Where the time to the first WebRTC picture goes: page load to first frame, step by step.

One running camera (2 s GOP) and camgate; headless Chromium opens ``/watch/<id>?mode=webrtc``
(and ``?mode=mse`` as the baseline, alternating) in a fresh context each round, a first-time
viewer: nothing cached. "webrtc again" is a returning viewer: the same page once more in a
context that has loaded it before (its scripts cached, as the browser keeps them for a version
of camgate). The page's own
clock (``performance.now()``, 0 at the start of navigation) marks: DOMContentLoaded, the WHEP
POST sent and answered (resource timing), ICE connected, the connection (DTLS) up, and the first
frame the video presents (``requestVideoFrameCallback``). A hook wraps ``RTCPeerConnection`` to
see its state changes; it changes nothing the page does.
Run with the project's venv:  .venv/bin/python bench/latency/first_frame.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from playwright.async_api import Browser, Page  # noqa: E402

from tests.support.browser import launch_chromium  # noqa: E402
from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.server import CamgateServer  # noqa: E402

CAMERA_ID = "bench"
SETTLE_S = 3.0  # after the camera runs: the latest GOP is complete
PAGE_TIMEOUT_S = 15.0
MARKS_JS = """
(() => {
  window.__marks = {};
  const mark = (name) => {
    if (!(name in window.__marks)) window.__marks[name] = performance.now();
  };
  const Native = window.RTCPeerConnection;
  if (Native) {
    window.RTCPeerConnection = function (...args) {
      const pc = new Native(...args);
      mark("peer connection");
      pc.addEventListener("iceconnectionstatechange", () => {
        if (pc.iceConnectionState === "connected") mark("ICE connected");
      });
      pc.addEventListener("connectionstatechange", () => {
        if (pc.connectionState === "connected") mark("DTLS connected");
      });
      return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
  }
  document.addEventListener("DOMContentLoaded", () => {
    mark("DOMContentLoaded");
    const video = document.querySelector("video");
    video.requestVideoFrameCallback(() => mark("first frame"));
  });
})();
"""
RESOURCES_JS = """() => performance.getEntriesByType("resource")
  .filter((e) => e.name.includes("/whep/"))
  .map((e) => [e.startTime, e.responseEnd])"""
STEPS = [
    "DOMContentLoaded",
    "peer connection",
    "POST sent",
    "answer",
    "ICE connected",
    "DTLS connected",
    "first frame",
]


async def one_load(browser: Browser, url: str, returning: bool = False) -> dict[str, float]:
    context = await browser.new_context()
    try:
        if returning:
            await first_frame(await context.new_page(), url)
        marks = await first_frame(await context.new_page(), url)
        return {name: value / 1000 for name, value in marks.items()}
    finally:
        await context.close()


async def first_frame(page: Page, url: str) -> dict[str, Any]:
    """The page's marks (ms) once it presented its first frame; the page is closed."""
    await page.add_init_script(MARKS_JS)
    await page.goto(url)
    await page.wait_for_function(
        "() => 'first frame' in window.__marks", timeout=PAGE_TIMEOUT_S * 1000
    )
    marks: dict[str, Any] = await page.evaluate("window.__marks")
    whep = await page.evaluate(RESOURCES_JS)
    if whep:
        marks["POST sent"], marks["answer"] = whep[0]
    await page.close()
    return marks


LOADS = {"webrtc": ("webrtc", False), "mse": ("mse", False), "webrtc again": ("webrtc", True)}


async def run(base_url: str, rounds: int) -> None:
    loads: dict[str, list[dict[str, float]]] = {label: [] for label in LOADS}
    async with launch_chromium() as browser:
        for round_ in range(1, rounds + 1):
            for label, (mode, returning) in LOADS.items():
                url = f"{base_url}/watch/{CAMERA_ID}?mode={mode}"
                marks = await one_load(browser, url, returning)
                loads[label].append(marks)
                steps = "  ".join(f"{k} {marks[k]:.3f}" for k in STEPS if k in marks)
                print(f"{round_:>2} {label:<12} {steps}  (load {os.getloadavg()[0]:.2f})")
    print()
    for label, runs in loads.items():
        print(f"{label}: median s after the start of the page load")
        for step in STEPS:
            values = [marks[step] for marks in runs if step in marks]
            if values:
                print(
                    f"  {step:<17} {statistics.median(values):.3f}"
                    f"  ({min(values):.3f}-{max(values):.3f})"
                )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="page loads per mode")
    args = parser.parse_args(argv)
    with ExitStack() as stack, tempfile.TemporaryDirectory() as work:
        camera = stack.enter_context(RtspCamera(timecode=True, gop_s=2.0))
        env = {"LOG_LEVEL": "warning"}
        server = stack.enter_context(CamgateServer(free_port(), Path(work) / "data", env))
        reply = server.service(cameraId=CAMERA_ID, rtspUrl=camera.url, action="start")
        reply.raise_for_status()
        server.wait_state(CAMERA_ID, {"running"}, 60)
        asyncio.run(asyncio.sleep(SETTLE_S))
        asyncio.run(run(server.base_url, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
