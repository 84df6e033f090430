"""Glass-to-glass latency in headless Chromium: camgate MSE, LL-HLS and plain HLS, the seed.

Variants (one camera with a 2 s GOP and a timecode feeds all of them):
  m  camgate MSE              /watch/<id>?mode=mse  fMP4 over a WebSocket, camgate's mse.js
  a  camgate LL-HLS           /watch/<id>?mode=ll   hls.js, lowLatencyMode
  b  camgate plain HLS        /watch/<id>?mode=hls  hls.js defaults, playlist without parts
  c  the seed's pipeline      libx264 ultrafast/zerolatency, 4 s MPEG-TS segments, 6 listed,
                              served by a local static server, hls.js defaults
  w  camgate WebRTC           /watch/<id>?mode=webrtc   WHEP, the camera's H.264 repacketized
  l  camgate LL-HLS, bare     a page with nothing but hls.js (lowLatencyMode, its defaults) and
                              the playlist: the player camgate's /watch must not be slower than

Each variant is watched for --warmup seconds, then latency (time shown minus time written into
the frame) is sampled on every presented frame for --seconds. Time to first frame is from the
start of the page load to the first frame the video presents, the source already running.
Everything the script starts (camera, camgate, FFmpeg, static server, Chromium) listens on
127.0.0.1 and is stopped on exit, Ctrl-C included.
Run with the project's venv:  .venv/bin/python bench/latency/run.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

# The bench drives the same helpers as the browser tests; they live in the repo's tests package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from playwright.async_api import Browser  # noqa: E402

from tests.support.browser import follow, launch_chromium, sample_latency, watch  # noqa: E402
from tests.support.camera import RtspCamera  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.seed_pipeline import SeedPipeline, StaticServer  # noqa: E402
from tests.support.server import CamgateServer, wait_for  # noqa: E402

CAMERA_ID = "bench"
CAMERA_GOP_S = 2.0
SEED_SEGMENT_S = 4.0
SEED_LIST_SIZE = 6
VARIANTS = {
    "m": "camgate MSE",
    "a": "camgate LL-HLS",
    "b": "camgate HLS (ll=0)",
    "c": "seed 4 s MPEG-TS",
    "w": "camgate WebRTC (WHEP)",
    "l": "camgate LL-HLS, bare hls.js",
}
BARE_PATH = "/bench-bare-player"  # answered by the browser itself (see bare_player_route)
BARE_PLAYER_HTML = f"""<!doctype html>
<html><body style="margin:0;background:#000">
<video muted autoplay playsinline style="width:100%"></video>
<script src="/static/vendor/hls.min.js"></script>
<script>
  const video = document.querySelector("video");
  const hls = new Hls({{ lowLatencyMode: true }});
  hls.loadSource("/hls/{CAMERA_ID}/index.m3u8");
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play());
  window.camgatePlayer = {{ hls, video, stats: () => ({{ engine: "hlsjs", errors: [] }}) }};
</script></body></html>"""
# A viewer joins a camera that is already streaming: wait until camgate's playlist holds a few
# GOP-long segments (a new stream's first two segments are one part each, see docs/llhls.md).
CAMGATE_PLAYLIST_SEGMENTS = 4
SOURCE_READY_TIMEOUT_S = 90.0
PLAYBACK_START_TIMEOUT_S = 30.0
# Notes when the page's video presents its first frame (ms since the page load started).
FIRST_FRAME_JS = """
document.addEventListener("DOMContentLoaded", () => {
  const video = document.querySelector("video");
  if (video && typeof video.requestVideoFrameCallback === "function") {
    video.requestVideoFrameCallback(() => { window.__benchFirstFrameMs = performance.now(); });
  }
});
"""


@dataclass
class Measurement:
    variant: str
    run: int
    latencies_s: list[float] = field(default_factory=list)
    first_frame_s: float | None = None
    stalls: int = 0
    fatal_errors: int = 0
    started: bool = True


@dataclass
class Sources:
    """Where each variant can be watched, once its source is up."""

    urls: dict[str, str] = field(default_factory=dict)


def start_sources(
    variants: list[str], work_dir: Path, stack: ExitStack, camgate_env: dict[str, str]
) -> Sources:
    """Start the camera and what the chosen variants need; every stop is pushed onto ``stack``."""
    camera = RtspCamera(timecode=True, gop_s=CAMERA_GOP_S)
    camera.start()
    stack.callback(camera.stop)
    sources = Sources()
    seed = None
    if "c" in variants:
        seed = stack.enter_context(
            SeedPipeline(
                camera.url,
                work_dir / "seed",
                segment_s=SEED_SEGMENT_S,
                list_size=SEED_LIST_SIZE,
            )
        )
        site = stack.enter_context(StaticServer(seed.site_dir))
        sources.urls["c"] = site.url + seed.watch_path
    if {"m", "a", "b", "w", "l"} & set(variants):
        base_url = start_camgate(camera.url, work_dir / "camgate", stack, camgate_env)
        sources.urls["w"] = f"{base_url}/watch/{CAMERA_ID}?mode=webrtc"
        sources.urls["m"] = f"{base_url}/watch/{CAMERA_ID}?mode=mse"
        sources.urls["a"] = f"{base_url}/watch/{CAMERA_ID}?mode=ll"
        sources.urls["b"] = f"{base_url}/watch/{CAMERA_ID}?mode=hls"
        sources.urls["l"] = base_url + BARE_PATH
    if seed is not None:
        # A viewer joins a running stream: let the seed fill its whole playlist first, or
        # hls.js starts at the only segment there is and looks better than the seed really is.
        seed.wait_ready(SOURCE_READY_TIMEOUT_S, min_segments=SEED_LIST_SIZE)
    return sources


def start_camgate(
    rtsp_url: str, data_dir: Path, stack: ExitStack, camgate_env: dict[str, str]
) -> str:
    env = {"LOG_LEVEL": "info", **camgate_env}
    server = stack.enter_context(CamgateServer(free_port(), data_dir, env=env))
    reply = server.service(cameraId=CAMERA_ID, rtspUrl=rtsp_url, action="start")
    if reply.is_error:
        raise SystemExit(
            f"camgate refused to start the stream: {reply.status_code} {reply.text}\n"
            f"camgate's log ends with:\n{server.log()[-3000:]}"
        )

    def playlist_ready() -> bool:
        playlist = server.client.get(f"/hls/{CAMERA_ID}/index.m3u8", params={"ll": "0"})
        return playlist.status_code == 200 and (
            playlist.text.count("#EXTINF") >= CAMGATE_PLAYLIST_SEGMENTS
        )

    try:
        wait_for(playlist_ready, SOURCE_READY_TIMEOUT_S, "camgate's playlist")
    except AssertionError as error:
        raise SystemExit(f"{error}\ncamgate's log ends with:\n{server.log()[-3000:]}") from None
    return server.base_url


async def measure(
    browser: Browser, variant: str, run: int, url: str, warmup_s: float, seconds: float
) -> Measurement:
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = await context.new_page()
        if url.endswith(BARE_PATH):
            # The bare page is served by the browser on camgate's origin: same-origin requests
            # for hls.js and the playlist, and nothing of camgate's page around them.
            await page.route(url, lambda route: route.fulfill(
                status=200, content_type="text/html", body=BARE_PLAYER_HTML
            ))  # fmt: skip
        await page.add_init_script(FIRST_FRAME_JS)
        warmup = await watch(page, url, warmup_s, start_timeout_s=PLAYBACK_START_TIMEOUT_S)
        if not warmup.started:
            print(f"  {variant} run {run}: never started: {warmup.errors[-5:]}", file=sys.stderr)
            return Measurement(variant, run, started=False)
        print(f"  {variant} run {run}: playing {warmup.startup_s:.2f} s after page load")
        first_frame_ms = await page.evaluate("() => window.__benchFirstFrameMs ?? null")
        playback, latencies_s = await asyncio.gather(
            follow(page, seconds), sample_latency(page, seconds)
        )
    finally:
        await context.close()
    return Measurement(
        variant,
        run,
        latencies_s=latencies_s,
        first_frame_s=first_frame_ms / 1000 if first_frame_ms is not None else None,
        stalls=len(warmup.stalls) + len(playback.stalls),
        fatal_errors=sum(1 for e in playback.errors if e.endswith("(fatal)")),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def table_row(
    label: str, samples: list[float], first_frames_s: list[float], stalls: int, errors: int
) -> str:
    first = f"{statistics.median(first_frames_s):>7.2f}" if first_frames_s else f"{'-':>7}"
    if not samples:
        return f"{label:<28} {0:>7} {'-':>7} {'-':>7} {'-':>7} {first} {stalls:>6} {errors:>6}"
    p50, p90, worst = percentile(samples, 50), percentile(samples, 90), max(samples)
    return (
        f"{label:<28} {len(samples):>7} {p50:>7.2f} {p90:>7.2f} {worst:>7.2f} {first} "
        f"{stalls:>6} {errors:>6}"
    )


def first_frames(measurements: list[Measurement]) -> list[float]:
    return [m.first_frame_s for m in measurements if m.first_frame_s is not None]


def print_results(measurements: list[Measurement], variants: list[str], runs: int) -> None:
    print()
    print(
        f"{'variant':<28} {'samples':>7} {'p50 s':>7} {'p90 s':>7} {'max s':>7} "
        f"{'first s':>7} {'stalls':>6} {'fatal':>6}"
    )
    pooled: dict[str, list[float]] = {}
    for variant in variants:
        mine = [m for m in measurements if m.variant == variant]
        pooled[variant] = [s for m in mine for s in m.latencies_s]
        if runs > 1:
            for m in mine:
                label = f"{variant} {VARIANTS[variant]} #{m.run}"
                print(table_row(label, m.latencies_s, first_frames([m]), m.stalls, m.fatal_errors))
        label = f"{variant} {VARIANTS[variant]}" + (" (all)" if runs > 1 else "")
        stalls = sum(m.stalls for m in mine)
        errors = sum(m.fatal_errors for m in mine)
        print(table_row(label, pooled[variant], first_frames(mine), stalls, errors))
    if pooled.get("m") and pooled.get("a"):
        ratio = percentile(pooled["a"], 50) / percentile(pooled["m"], 50)
        print(f"\np50 ratio camgate LL-HLS (a) / camgate MSE (m): {ratio:.1f}x")
    if pooled.get("a") and pooled.get("c"):
        ratio = percentile(pooled["c"], 50) / percentile(pooled["a"], 50)
        print(f"\np50 ratio seed (c) / camgate LL-HLS (a): {ratio:.1f}x")


def describe_machine(chromium_version: str) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ffmpeg = shutil.which("ffmpeg")
    ffmpeg_version = "not found"
    if ffmpeg:
        out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)
        ffmpeg_version = out.stdout.splitlines()[0] if out.stdout else "unknown"
    return (
        f"machine: {os.cpu_count()} cores, {cpu}\n"
        f"chromium: {chromium_version}\n"
        f"ffmpeg: {ffmpeg_version}\n"
        f"python: {platform.python_version()}\n"
        f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


async def run_bench(args: argparse.Namespace, sources: Sources) -> None:
    # Inside the event loop SIGTERM cancels the bench like Ctrl-C does (asyncio.run's own
    # handling), so Chromium is closed through Playwright rather than torn out from under it.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    measurements = []
    async with launch_chromium() as browser:
        print(describe_machine(browser.version))
        for run in range(1, args.runs + 1):
            for variant in args.variants:
                print(
                    f"measuring {variant} ({VARIANTS[variant]}) run {run}/{args.runs} ...",
                    flush=True,
                )
                measurements.append(
                    await measure(
                        browser, variant, run, sources.urls[variant], args.warmup, args.seconds
                    )
                )
    print_results(measurements, args.variants, args.runs)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds played before that")
    parser.add_argument("--runs", type=int, default=1, help="runs per variant")
    parser.add_argument(
        "--variants", default="m,a,b,c", help=f"comma-separated: {', '.join(VARIANTS)}"
    )
    parser.add_argument(
        "--env", action="append", default=[], help="camgate setting NAME=VALUE (repeatable)"
    )
    args = parser.parse_args(argv)
    args.camgate_env = dict(item.split("=", 1) for item in args.env)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown or not args.variants:
        parser.error(
            f"--variants takes a comma-separated subset of {','.join(VARIANTS)} (got {unknown})"
        )
    if args.runs < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--runs must be >= 1, --seconds > 0 and --warmup >= 0")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Until the event loop runs, SIGTERM ends the bench like Ctrl-C does, so the exit stack
    # still stops every child.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with ExitStack() as stack:
            work_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="camgate-bench-"))
            )
            print("starting the camera and the sources ...", flush=True)
            sources = start_sources(args.variants, work_dir, stack, args.camgate_env)
            asyncio.run(run_bench(args, sources))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
