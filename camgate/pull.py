"""One attempt at pulling a camera: ask FFmpeg what it sends, run FFmpeg, read its fragmented MP4
until it ends, stalls, writes garbage or is told to stop, and say why it ended.

A `Pull` owns the FFmpeg processes and tasks it starts and ends them all before `run()` returns.
It decides nothing about retrying: the stream's supervisor does. Whatever goes wrong while
starting or reading FFmpeg becomes the attempt's failure, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from camgate import child
from camgate.camera import CameraSpec, redact_text
from camgate.config import Settings
from camgate.ffmpeg import (
    Failure,
    FailureReason,
    FfmpegCommand,
    MediaInfo,
    StderrLines,
    classify_probe_failure,
    classify_stderr,
    parse_media_info,
    probe_command,
    stream_command,
)
from camgate.fmp4 import Fmp4Error, Fmp4Reader, Fragment, InitSegment

READ_CHUNK_BYTES = 256 * 1024
STDERR_CHUNK_BYTES = 16 * 1024
STDERR_LINES_KEPT = 40
# FFmpeg notes that are expected with stream copy from RTSP and say nothing about health.
_HARMLESS = (
    "Timestamps are unset",
    "Non-monotonous DTS",
    "non monotonically",
    "max delay reached",
    # Small probing is on purpose (fast start); FFmpeg suggests more every time.
    "Consider increasing the value for the 'analyzeduration'",
    "consider increasing probesize",
)
UNWATCHED = "unwatched"  # what the viewer watch returns when an on-demand camera goes idle


@dataclass
class Attempt:
    """What one attempt learned, for the supervisor's decision."""

    started_monotonic: float
    failure: Failure | None = None
    exit_code: int | None = None
    unwatched: bool = False  # an on-demand camera that nobody watched any more


@dataclass(frozen=True)
class PullHooks:
    """How a pull reports to its stream."""

    started: Callable[[int, MediaInfo], None]  # FFmpeg runs (pid) with what the probe found
    item: Callable[[InitSegment | Fragment], None]  # every init segment and fragment
    received: Callable[[int], None]  # bytes read from FFmpeg
    stalled: Callable[[float], None]  # no media for that many seconds
    viewers_gone: Callable[[], Awaitable[str]] | None = None  # returns UNWATCHED


class Pull:
    """One attempt; `run()` once."""

    def __init__(
        self,
        spec: CameraSpec,
        settings: Settings,
        ffmpeg: str,
        stop: asyncio.Event,
        hooks: PullHooks,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self._spec = spec
        self._settings = settings
        self._ffmpeg = ffmpeg
        self._stop = stop
        self._hooks = hooks
        self._log = log
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._last_media = time.monotonic()

    async def run(self) -> Attempt:
        attempt = Attempt(time.monotonic())
        try:
            await self._run(attempt)
        except child.SpawnError as error:
            attempt.failure = Failure(FailureReason.SPAWN_FAILED, str(error))
        except Exception as error:
            self._log.exception("ffmpeg attempt failed")
            attempt.failure = Failure(FailureReason.UNKNOWN, f"internal error: {error}")
        return attempt

    async def _run(self, attempt: Attempt) -> None:
        info, fast_probe = await self._probe()
        if info is None:
            attempt.failure = classify_probe_failure(
                list(self._stderr),
                time.monotonic() - attempt.started_monotonic,
                self._settings.rtsp_timeout_s,
            )
            return
        if self._stop.is_set():
            return
        command = stream_command(self._ffmpeg, self._spec, self._settings, info, fast_probe)
        process = await self._spawn(command)
        self._last_media = time.monotonic()
        self._hooks.started(process.pid, info)
        try:
            outcome = await self._watch(process)
            attempt.unwatched = outcome == UNWATCHED
            attempt.failure = outcome if isinstance(outcome, Failure) else None
        finally:
            attempt.exit_code = await child.terminate(process, self._settings.stop_timeout_s)
        if attempt.failure is None and not attempt.unwatched and not self._stop.is_set():
            attempt.failure = classify_stderr(list(self._stderr), attempt.exit_code)

    async def _spawn(self, command: FfmpegCommand) -> asyncio.subprocess.Process:
        return await child.spawn(command.argv, command.stdin_bytes)

    async def _probe(self) -> tuple[MediaInfo | None, bool]:
        """Ask FFmpeg what the camera sends; `None` when it could not tell (see stderr)."""
        process = await self._spawn(probe_command(self._ffmpeg, self._spec, self._settings))
        stop_wait = asyncio.ensure_future(self._stop.wait())
        output = asyncio.ensure_future(process.communicate())
        try:
            await asyncio.wait(
                {output, stop_wait},
                timeout=self._settings.rtsp_timeout_s + 5,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not output.done():
                if not self._stop.is_set():
                    self._stderr.append("probe timed out")
                return None, True
            text = output.result()[1].decode("utf-8", "replace")
        finally:
            stop_wait.cancel()
            await child.terminate(process, self._settings.stop_timeout_s)  # if still running
            output.cancel()
        info = parse_media_info(text)
        if info.video_codec is None:
            secrets = self._spec.secrets
            lines = text.splitlines()[-STDERR_LINES_KEPT:]
            self._stderr.extend(redact_text(line, secrets) for line in lines if line)
            if "Stream #" in text:
                self._stderr.append("Stream map '0:v:0' matches no streams")
            return None, True
        # Without SPS/PPS in the SDP FFmpeg reports no picture size: probe the stream instead.
        return info, info.width is not None

    async def _watch(self, process: asyncio.subprocess.Process) -> Failure | str | None:
        """Run until FFmpeg exits, stalls, writes garbage, nobody watches an on-demand camera
        (UNWATCHED) or the stream is stopped."""
        assert process.stdout is not None and process.stderr is not None
        pump = asyncio.create_task(self._pump(process.stdout))
        tasks: set[asyncio.Task[Any]] = {
            pump,
            asyncio.create_task(self._read_stderr(process.stderr)),
            asyncio.create_task(self._watchdog()),
            asyncio.create_task(self._stop.wait()),
        }
        if self._hooks.viewers_gone is not None:
            tasks.add(asyncio.ensure_future(self._hooks.viewers_gone()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                result = task.result()
                if isinstance(result, Failure) or result == UNWATCHED:
                    return result
            if pump in done:  # stdout closed: FFmpeg is ending; let stderr drain its last words
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), self._settings.stop_timeout_s)
            return None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, stdout: asyncio.StreamReader) -> Failure | None:
        reader = Fmp4Reader()
        while chunk := await stdout.read(READ_CHUNK_BYTES):
            self._hooks.received(len(chunk))
            try:
                items = reader.feed(chunk)
            except Fmp4Error as error:
                return Failure(FailureReason.UNKNOWN, f"unreadable ffmpeg output: {error}")
            for item in items:
                if isinstance(item, Fragment):
                    self._last_media = time.monotonic()
                self._hooks.item(item)
        return None

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        # Chunks, not readline(): a line over the reader's 64 KiB limit would raise instead.
        lines = StderrLines()
        while chunk := await stderr.read(STDERR_CHUNK_BYTES):
            for line in lines.feed(chunk):
                self._note_stderr(line)
        for line in lines.close():
            self._note_stderr(line)
        await asyncio.Event().wait()  # stderr closed: let the other tasks decide

    def _note_stderr(self, raw_line: str) -> None:
        line = redact_text(raw_line, self._spec.secrets)
        self._stderr.append(line)
        harmless = any(marker in line for marker in _HARMLESS)
        self._log.log(logging.DEBUG if harmless else logging.INFO, "ffmpeg: %s", line)

    async def _watchdog(self) -> Failure:
        timeout_s = self._settings.stall_timeout_s
        while True:
            silent_s = time.monotonic() - self._last_media
            if silent_s >= timeout_s:
                self._hooks.stalled(silent_s)
                self._log.warning("no media for %.1fs: restarting ffmpeg", silent_s)
                return Failure(FailureReason.STALLED, f"no media for {silent_s:.0f}s")
            await asyncio.sleep(min(1.0, timeout_s - silent_s))
