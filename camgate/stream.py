"""One camera's stream: the supervisor that runs FFmpeg, fans its output out to the camera's
outputs (through the `MediaSink` seam), watches for stalls and restarts with backoff.

A `Stream` owns every task and process it starts and ends them all in `stop()`. It knows nothing
of HTTP. Its camera URL is only ever passed to FFmpeg; status, events and logs show it redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from camgate import child
from camgate.camera import CameraSpec, redact_text
from camgate.config import Settings
from camgate.events import EventBus, EventType
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
from camgate.outputs.sink import OutputFactory, Outputs
from camgate.state import (
    ACTIVE_STATES,
    PULLING_STATES,
    StreamState,
    backoff_delay_s,
    check_transition,
)
from camgate.status import Codecs, HlsStatus, Playback, StreamStatus

log = logging.getLogger("camgate.stream")

READ_CHUNK_BYTES = 256 * 1024
STDERR_CHUNK_BYTES = 16 * 1024
STDERR_LINES_KEPT = 40
# Cameras lock an account after a few bad logins, and a wrong path does not fix itself: these
# wait the longest delay from the first failure instead of growing towards it.
SLOW_RETRY_REASONS = frozenset({FailureReason.AUTH_FAILED, FailureReason.NOT_FOUND})
# FFmpeg notes that are expected with stream copy from RTSP and say nothing about health.
_HARMLESS = ("Timestamps are unset", "Non-monotonous DTS", "non monotonically", "max delay reached")


@dataclass
class _Attempt:
    """What one FFmpeg run of a stream learned, for the supervisor's decision."""

    started_monotonic: float
    failure: Failure | None = None
    exit_code: int | None = None
    unwatched: bool = False  # an on-demand camera that nobody watched any more


UNWATCHED = "unwatched"  # what the viewer watch returns when an on-demand camera goes idle


class Stream:
    """Supervises FFmpeg for one camera until `stop()` is awaited."""

    def __init__(
        self,
        spec: CameraSpec,
        settings: Settings,
        ffmpeg: str,
        bus: EventBus,
        outputs: Sequence[OutputFactory] = (),
    ) -> None:
        self.spec = spec
        self._settings = settings
        self._ffmpeg = ffmpeg
        self._bus = bus
        self.state = StreamState.STOPPED  # until start(): a camera that is not streaming
        self._output_factories = tuple(outputs)
        self.outputs: Outputs | None = None
        self.media = MediaInfo()
        self.started_at: datetime | None = None
        self.running_since: datetime | None = None
        self.restart_count = 0
        self.attempt = 0
        self.last_error: str | None = None
        self.last_reason: FailureReason | None = None
        self.next_retry_at: datetime | None = None
        self.bytes_received = 0
        self.pid: int | None = None
        self._last_media = time.monotonic()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._stop = asyncio.Event()
        self._wanted = asyncio.Event()  # an on-demand camera in idle has a viewer
        self._changed = asyncio.Event()  # set and replaced at every transition
        self._last_watched = time.monotonic()
        self._viewers_waiting = 0  # viewers waiting in wait_running() for an on-demand start
        self._supervisor: asyncio.Task[None] | None = None
        self._log = logging.LoggerAdapter(log, {"camera": spec.camera_id})

    # ----- lifecycle -------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Started: streaming, or an on-demand camera waiting for a viewer."""
        return self.state in ACTIVE_STATES

    @property
    def pulling(self) -> bool:
        """FFmpeg runs or is about to: this counts against MAX_CONCURRENT_STREAMS."""
        return self.state in PULLING_STATES

    def start(self) -> None:
        """Begin supervising (returns at once; progress shows in state and events). An
        on-demand camera waits in `idle` until `wake()`."""
        self._transition(StreamState.IDLE if self.spec.on_demand else StreamState.STARTING)
        self._stop = asyncio.Event()
        self.started_at = datetime.now(UTC)
        self.attempt = 0
        self.last_error = self.last_reason = None
        self.outputs = Outputs.build(self._output_factories, self.spec.camera_id, self._settings)
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"stream:{self.spec.camera_id}"
        )

    async def stop(self) -> None:
        """Stop FFmpeg (politely, then forcibly), end every task, drop the HLS output."""
        if self.state is StreamState.STOPPED:
            return
        self._transition(StreamState.STOPPING)
        self._stop.set()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self.outputs is not None:
            self.outputs.close()
            self.outputs = None
        self.running_since = None
        self.next_retry_at = None
        self._transition(StreamState.STOPPED)
        self._bus.publish(EventType.STOPPED, self.spec.camera_id)
        self._log.info("stream stopped")

    # ----- supervision -----------------------------------------------------------------------
    async def _supervise(self) -> None:
        try:
            while not self._stop.is_set():
                if self.state is StreamState.IDLE and not await self._until_wanted():
                    return
                attempt = await self._run_guarded()
                if self._stop.is_set():
                    return
                if attempt.unwatched:
                    self._go_idle()
                    continue
                if time.monotonic() - attempt.started_monotonic >= self._settings.healthy_after_s:
                    self.attempt = 0
                self.attempt += 1
                if not await self._back_off(attempt):
                    return
        except Exception as error:  # a bug must not leave a zombie stream behind
            self._log.exception("stream supervisor crashed")
            self._record_failure(Failure(FailureReason.UNKNOWN, f"internal error: {error}"))
            if self.state is not StreamState.STOPPING:
                self._fail()

    async def _back_off(self, attempt: _Attempt) -> bool:
        """Wait before the next attempt; False when the stream must not be retried."""
        s = self._settings
        failure = attempt.failure or Failure(FailureReason.UNKNOWN, "ffmpeg ended")
        failure = self._record_failure(failure)
        self._bus.publish(
            EventType.EXITED,
            self.spec.camera_id,
            code=attempt.exit_code,
            reason=str(failure.reason),
            detail=failure.detail,
        )
        if s.restart_max_attempts and self.attempt >= s.restart_max_attempts:
            self._fail()
            self._bus.publish(
                EventType.FAILED,
                self.spec.camera_id,
                attempts=self.attempt,
                reason=str(failure.reason),
            )
            self._log.error("giving up after %d attempts: %s", self.attempt, failure.reason)
            return False
        slow = failure.reason in SLOW_RETRY_REASONS
        minimum_s = s.restart_delay_max_s if slow else s.restart_delay_min_s
        delay = backoff_delay_s(self.attempt, minimum_s, s.restart_delay_max_s, random.random())
        self.next_retry_at = datetime.now(UTC) + timedelta(seconds=delay)
        self.running_since = None
        self._transition(StreamState.BACKOFF)
        self._bus.publish(
            EventType.RESTARTING,
            self.spec.camera_id,
            attempt=self.attempt,
            delay=round(delay, 2),
            reason=str(failure.reason),
        )
        self._log.warning(
            "ffmpeg ended (%s: %s); retry %d in %.1fs",
            failure.reason,
            failure.detail,
            self.attempt,
            delay,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
        if self._stop.is_set():
            return False
        if self.spec.on_demand and self.unwatched_s() >= s.on_demand_idle_s:
            self._go_idle()  # nobody waits for this camera to come back
            return True
        self.next_retry_at = None
        self.restart_count += 1
        self._transition(StreamState.STARTING)
        return True

    def _record_failure(self, failure: Failure) -> Failure:
        """Keep the failure for the status; returns it with the detail redacted."""
        detail = redact_text(failure.detail, self.spec.secrets)
        self.last_reason = failure.reason
        self.last_error = f"{failure.reason}: {detail}" if detail else str(failure.reason)
        return Failure(failure.reason, detail)

    async def _run_guarded(self) -> _Attempt:
        """One attempt; an error while starting or reading FFmpeg is that attempt's failure,
        so only RESTART_MAX_ATTEMPTS can end the stream."""
        attempt = _Attempt(time.monotonic())
        try:
            await self._run_once(attempt)
        except child.SpawnError as error:
            attempt.failure = Failure(FailureReason.SPAWN_FAILED, str(error))
        except Exception as error:
            self._log.exception("ffmpeg attempt failed")
            attempt.failure = Failure(FailureReason.UNKNOWN, f"internal error: {error}")
        return attempt

    async def _run_once(self, attempt: _Attempt) -> None:
        self._stderr.clear()
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
        self.media = info
        command = stream_command(self._ffmpeg, self.spec, self._settings, info, fast_probe)
        process = await self._spawn(command)
        self.pid = process.pid
        self._last_media = time.monotonic()
        self._bus.publish(
            EventType.STARTED,
            self.spec.camera_id,
            pid=process.pid,
            transcoding=self.spec.overrides.reencode,
        )
        self._log.info(
            "ffmpeg started pid=%d video=%s audio=%s copy=%s",
            process.pid,
            info.video_codec,
            info.audio_codec,
            not self.spec.overrides.reencode,
        )
        try:
            outcome = await self._watch(process)
            attempt.unwatched = outcome == UNWATCHED
            attempt.failure = outcome if isinstance(outcome, Failure) else None
        finally:
            attempt.exit_code = await child.terminate(process, self._settings.stop_timeout_s)
            self.pid = None
            if self.outputs is not None:
                self.outputs.discontinuity()
        if attempt.failure is None and not attempt.unwatched and not self._stop.is_set():
            attempt.failure = classify_stderr(list(self._stderr), attempt.exit_code)

    async def _spawn(self, command: FfmpegCommand) -> asyncio.subprocess.Process:
        return await child.spawn(command.argv, command.stdin_bytes)

    async def _probe(self) -> tuple[MediaInfo | None, bool]:
        """Ask FFmpeg what the camera sends; `None` when it could not tell (see stderr)."""
        process = await self._spawn(probe_command(self._ffmpeg, self.spec, self._settings))
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
            secrets = self.spec.secrets
            lines = text.splitlines()[-STDERR_LINES_KEPT:]
            self._stderr.extend(redact_text(line, secrets) for line in lines if line)
            if "Stream #" in text and info.video_codec is None:
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
        if self.spec.on_demand:
            tasks.add(asyncio.create_task(self._viewer_watch()))
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
            self.bytes_received += len(chunk)
            try:
                items = reader.feed(chunk)
            except Fmp4Error as error:
                return Failure(FailureReason.UNKNOWN, f"unreadable ffmpeg output: {error}")
            for item in items:
                self._accept(item)
        return None

    def _accept(self, item: InitSegment | Fragment) -> None:
        outputs = self.outputs
        if outputs is None:
            return
        if isinstance(item, InitSegment):
            outputs.set_init(item)
            size = f"{item.width}x{item.height}" if item.width and item.height else None
            self.media = replace(
                self.media,
                width=self.media.width or item.width,
                height=self.media.height or item.height,
                codecs=item.codecs,
                output_size=size,
            )
            return
        outputs.add_fragment(item)
        self._last_media = time.monotonic()
        if self.state is StreamState.STARTING and outputs.ready:
            self._transition(StreamState.RUNNING)
            self.running_since = datetime.now(UTC)
            self._bus.publish(EventType.READY, self.spec.camera_id, playlist=self.playlist_path)
            self._log.info("stream ready")

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
        line = redact_text(raw_line, self.spec.secrets)
        self._stderr.append(line)
        harmless = any(marker in line for marker in _HARMLESS)
        self._log.log(logging.DEBUG if harmless else logging.INFO, "ffmpeg: %s", line)

    # ----- on-demand -------------------------------------------------------------------------
    def wake(self) -> None:
        """A viewer wants an idle on-demand camera: start pulling it."""
        self._last_watched = time.monotonic()
        self._wanted.set()

    def unwatched_s(self) -> float:
        """Seconds since any output last had a viewer."""
        now = time.monotonic()
        watched = self.outputs is not None and self.outputs.consumers > 0
        if watched or self._viewers_waiting:
            self._last_watched = now
        return now - self._last_watched

    async def wait_running(self, timeout_s: float) -> bool:
        """Wait until the stream runs; False at the deadline or once it can no longer start."""
        settled = {StreamState.RUNNING, StreamState.FAILED, StreamState.STOPPING}
        self._viewers_waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while self.state not in settled | {StreamState.STOPPED}:
                        await self._changed.wait()
        finally:
            self._viewers_waiting -= 1
        return self.state is StreamState.RUNNING

    async def _until_wanted(self) -> bool:
        """In idle: wait for a viewer (True) or a stop (False)."""
        stop = asyncio.ensure_future(self._stop.wait())
        wanted = asyncio.ensure_future(self._wanted.wait())
        try:
            await asyncio.wait({stop, wanted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wanted.cancel()
        if self._stop.is_set():
            return False
        self._wanted.clear()
        self._last_watched = time.monotonic()
        self._transition(StreamState.STARTING)
        return True

    async def _viewer_watch(self) -> str:
        idle_s = self._settings.on_demand_idle_s
        while (unwatched := self.unwatched_s()) < idle_s:
            await asyncio.sleep(min(1.0, idle_s - unwatched))
        return UNWATCHED

    def _go_idle(self) -> None:
        """Nobody watched for ON_DEMAND_IDLE_S: stop pulling; fresh outputs for the next viewer."""
        self._log.info("no viewers for %.0fs: idle until the next one", self.unwatched_s())
        self.running_since = None
        self.next_retry_at = None
        self.attempt = 0
        if self.outputs is not None:
            self.outputs.close()
        self.outputs = Outputs.build(self._output_factories, self.spec.camera_id, self._settings)
        self._transition(StreamState.IDLE)

    async def _watchdog(self) -> Failure:
        timeout_s = self._settings.stall_timeout_s
        while True:
            silent_s = time.monotonic() - self._last_media
            if silent_s >= timeout_s:
                self._bus.publish(
                    EventType.STALLED, self.spec.camera_id, silentSeconds=round(silent_s, 1)
                )
                self._log.warning("no media for %.1fs: restarting ffmpeg", silent_s)
                return Failure(FailureReason.STALLED, f"no media for {silent_s:.0f}s")
            await asyncio.sleep(min(1.0, timeout_s - silent_s))

    def _fail(self) -> None:
        """Give up: no uptime, no retry, and the outputs end (their waiting viewers return)."""
        self.running_since = None
        self.next_retry_at = None
        if self.outputs is not None:
            self.outputs.close()
            self.outputs = None
        self._transition(StreamState.FAILED)

    def _transition(self, new: StreamState) -> None:
        """The one place a state changes; every change is one event carrying the new status."""
        self.state = check_transition(self.state, new)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        status = self.status().model_dump(mode="json")
        self._bus.publish(EventType.STATE, self.spec.camera_id, state=str(new), status=status)

    # ----- status ----------------------------------------------------------------------------
    @property
    def playlist_path(self) -> str:
        return f"/hls/{self.spec.camera_id}/index.m3u8"

    def status(self) -> StreamStatus:
        """The stream's status as the API and events show it."""
        since = self.running_since
        stats = self.outputs.stats() if self.outputs is not None else {}
        hls = stats.get("hls")
        return StreamStatus(
            cameraId=self.spec.camera_id,
            state=self.state,
            onDemand=self.spec.on_demand,
            consumers=self.outputs.consumers if self.outputs is not None else 0,
            rtspUrl=self.spec.redacted_url,
            playback=Playback(
                hls=self.playlist_path,
                llhls=self.playlist_path,
                plainHls=f"{self.playlist_path}?ll=0",
                player=f"/watch/{self.spec.camera_id}",
            ),
            hlsUrl=self.playlist_path,
            startedAt=self.started_at.isoformat() if self.started_at else None,
            runningSince=since.isoformat() if since else None,
            uptimeSeconds=round((datetime.now(UTC) - since).total_seconds(), 1) if since else 0.0,
            restartCount=self.restart_count,
            attempt=self.attempt,
            lastError=self.last_error,
            reason=str(self.last_reason) if self.last_reason else None,
            nextRetryAt=self.next_retry_at.isoformat() if self.next_retry_at else None,
            overrides=self.spec.overrides.as_dict(),
            transcoding=self.spec.overrides.reencode,
            codecs=Codecs.model_validate(self.media.as_dict()),
            bytesReceived=self.bytes_received,
            pid=self.pid,
            hls=HlsStatus.model_validate(hls.as_dict()) if hls is not None else HlsStatus(),
            outputs={name: figures.as_dict() for name, figures in stats.items()},
        )
