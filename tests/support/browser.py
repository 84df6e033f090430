"""Plays pages in headless Chromium and measures what a viewer would see (async Playwright).

``launch_chromium()`` starts Debian's Chromium (``CAMGATE_CHROMIUM`` overrides the path;
Playwright's own browser download is not used). ``watch()`` reports whether a page's video starts
and keeps moving (``follow()`` does the second half on a page already playing);
``sample_latency()`` reads the test camera's timecode out of presented frames with
``camgate/web/static/timecode.js``, the one browser-side decoder.

Test and benchmark support only: nothing in ``camgate`` may import it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

import camgate.web

CHROMIUM_ENV = "CAMGATE_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
TIMECODE_JS = Path(camgate.web.__file__).parent / "static" / "timecode.js"
SAMPLE_INTERVAL_S = 0.25
STALL_THRESHOLD_S = 1.0
NAVIGATION_TIMEOUT_S = 15.0

_PLAYING_JS = """(selector) => {
  const v = document.querySelector(selector);
  return v !== null && !v.paused && v.readyState >= 2 && v.currentTime > 0;
}"""
_POSITION_JS = """(selector) => {
  const v = document.querySelector(selector);
  return [v.currentTime, v.paused];
}"""
_PAGE_ERRORS_JS = """(selector) => {
  const out = [];
  const v = document.querySelector(selector);
  if (v && v.error) out.push(`video: MediaError ${v.error.code} ${v.error.message}`);
  const player = window.camgatePlayer;
  if (player) {
    for (const e of player.stats().errors) {
      out.push(`player: ${e.source} ${e.detail}${e.fatal ? " (fatal)" : ""}`);
    }
  }
  return out;
}"""
_PLAYER_STATS_JS = "() => (window.camgatePlayer ? window.camgatePlayer.stats() : null)"
_SAMPLE_LATENCY_JS = """([selector, seconds]) =>
  CamgateTimecode.sampleFor(document.querySelector(selector), seconds)"""


def chromium_path() -> str:
    return os.environ.get(CHROMIUM_ENV, DEFAULT_CHROMIUM)


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """A headless Chromium that may autoplay; closed (with its pages) on exit."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass(frozen=True)
class Stall:
    """The video stood still while not paused: from ``at_s`` after the start, for ``duration_s``."""

    at_s: float
    duration_s: float


@dataclass
class PlaybackReport:
    url: str
    started: bool
    startup_s: float | None
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since playback started, video.currentTime), one every ~SAMPLE_INTERVAL_S."""
    stalls: list[Stall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    player_stats: dict[str, Any] | None = None
    """``window.camgatePlayer.stats()`` at the end, when the page is camgate's player."""
    started_at_s: float = 0.0
    """The event loop's time when sampling started (the samples' and stalls' zero)."""

    @property
    def advanced_s(self) -> float:
        """How far the video position moved while it was sampled."""
        if len(self.samples) < 2:
            return 0.0
        return self.samples[-1][1] - self.samples[0][1]

    @property
    def watched_s(self) -> float:
        return self.samples[-1][0] if self.samples else 0.0


class _StallTracker:
    def __init__(self, now_s: float, position_s: float) -> None:
        self.stalls: list[Stall] = []
        self._start_s = now_s
        self._last_move_s = now_s
        self._last_position_s = position_s

    def observe(self, now_s: float, position_s: float, paused: bool) -> None:
        if position_s != self._last_position_s:
            self._close(now_s)
            self._last_position_s = position_s
        elif paused:
            self._last_move_s = now_s  # a paused video is not stalled

    def finish(self, now_s: float) -> None:
        self._close(now_s)

    def _close(self, now_s: float) -> None:
        still_s = now_s - self._last_move_s
        if still_s > STALL_THRESHOLD_S:
            self.stalls.append(Stall(self._last_move_s - self._start_s, still_s))
        self._last_move_s = now_s


async def watch(
    page: Page,
    url: str,
    seconds: float,
    *,
    start_timeout_s: float = 30.0,
    video_selector: str = "video",
) -> PlaybackReport:
    """Open ``url``, wait until its video plays, then ``follow()`` it for ``seconds``."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: _keep_console_error(msg, errors))
    loop = asyncio.get_running_loop()
    opened_s = loop.time()
    await page.goto(url, wait_until="domcontentloaded", timeout=NAVIGATION_TIMEOUT_S * 1000)
    try:
        await page.wait_for_function(
            _PLAYING_JS, arg=video_selector, timeout=start_timeout_s * 1000, polling=100
        )
    except PlaywrightTimeoutError:
        errors.extend(await page.evaluate(_PAGE_ERRORS_JS, video_selector))
        return PlaybackReport(url, started=False, startup_s=None, errors=errors)
    startup_s = loop.time() - opened_s
    report = await follow(page, seconds, video_selector=video_selector)
    report.startup_s = startup_s
    report.errors[:0] = errors
    return report


async def follow(page: Page, seconds: float, *, video_selector: str = "video") -> PlaybackReport:
    """Sample the position of a page's playing video for ``seconds`` and count its stalls.

    ``errors`` holds what the page itself knows (the video's error, the camgate player's list);
    ``watch()`` adds the page errors and console errors it saw from the start.
    """
    loop = asyncio.get_running_loop()
    start_s = loop.time()
    position_s, _paused = await page.evaluate(_POSITION_JS, video_selector)
    tracker = _StallTracker(0.0, position_s)
    samples = [(0.0, position_s)]
    while loop.time() - start_s < seconds:
        await asyncio.sleep(SAMPLE_INTERVAL_S)
        position_s, paused = await page.evaluate(_POSITION_JS, video_selector)
        now_s = loop.time() - start_s
        samples.append((now_s, position_s))
        tracker.observe(now_s, position_s, paused)
    tracker.finish(loop.time() - start_s)
    return PlaybackReport(
        page.url,
        started=True,
        startup_s=None,
        samples=samples,
        stalls=tracker.stalls,
        errors=await page.evaluate(_PAGE_ERRORS_JS, video_selector),
        player_stats=await page.evaluate(_PLAYER_STATS_JS),
        started_at_s=start_s,
    )


def _keep_console_error(message: ConsoleMessage, errors: list[str]) -> None:
    if message.type == "error":
        errors.append(f"console: {message.text}")


async def sample_latency(
    page: Page, seconds: float, *, video_selector: str = "video"
) -> list[float]:
    """Glass-to-glass latency in seconds, one sample per frame presented during ``seconds``.

    Frames without a readable timecode are skipped. The page must already be playing.
    """
    has_decoder = await page.evaluate("() => typeof window.CamgateTimecode !== 'undefined'")
    if not has_decoder:
        await page.add_script_tag(path=TIMECODE_JS)
    result = await page.evaluate(_SAMPLE_LATENCY_JS, [video_selector, seconds])
    return [ms / 1000 for ms in result["samplesMs"]]
