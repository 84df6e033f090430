"""One attempt at pulling a camera: run FFmpeg, read its fragmented MP4 until it ends, stalls,
writes garbage or is told to stop, and say why it ended.

There is no separate probe. FFmpeg is started with a plan: the codec facts the camera's last
run reported, or for a camera not seen yet the most common case (H.264 without audio, its
SPS/PPS in the SDP). FFmpeg describes the camera's streams before it writes any output; when
the command for those facts differs from the one running (audio to copy or convert, H.265's tag,
a full probe for an SDP without SPS/PPS), this FFmpeg is replaced by one for the facts, and
nothing it wrote reaches the outputs. So a camera that fits the plan starts with one FFmpeg and
one RTSP session, and one that does not with two, as with a probe before every start (three
when its SDP lacks SPS/PPS and a tiny probe missed the picture size).

When the stream takes packets (`PullHooks.packet`, for WebRTC) and the video is copied H.264,
FFmpeg also writes the video packet by packet on a second pipe (FLV, a frame ahead of the MP4);
those packets are held and passed on with the MP4 output, in the order they came.

A `Pull` owns the FFmpeg processes and tasks it starts and ends them all before `run()` returns.
It decides nothing about retrying: the stream's supervisor does. Whatever goes wrong while
starting or reading FFmpeg becomes the attempt's failure, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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
    InputDump,
    MediaInfo,
    StderrLines,
    classify_probe_failure,
    classify_stderr,
    stream_command,
)
from camgate.ffmpeg.command import sends_packets
from camgate.flv import FlvError, FlvItem, FlvReader
from camgate.fmp4 import Fmp4Error, Fmp4Reader, Fragment, InitSegment
from camgate.tasks import cancel_and_wait

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
# A run whose output arrives before FFmpeg's description of its input (two pipes, read apart)
# waits this long for the description before trusting its plan.
DESCRIPTION_GRACE_S = 2.0
ROUTINE_LINES = ("  ", "Output #", "Stream mapping:", "Press [q]")  # FFmpeg's info at start


@dataclass(frozen=True)
class Plan:
    """The codec facts a run's command is built from, and whether FFmpeg may probe tiny (the
    SDP carries SPS/PPS, so FFmpeg knows the picture size at once)."""

    info: MediaInfo
    fast_probe: bool = True

    def after(self, facts: MediaInfo) -> Plan:
        """The plan for what a run with this plan described. Without SPS/PPS in the SDP a
        tiny probe finds no picture size: from then on FFmpeg probes the stream."""
        return Plan(facts, self.fast_probe and facts.width is not None)


FIRST_PLAN = Plan(MediaInfo(video_codec="h264"))  # a camera not seen yet


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

    started: Callable[[int, MediaInfo], None]  # FFmpeg runs (pid) with what it described
    item: Callable[[InitSegment | Fragment], None]  # every init segment and fragment
    received: Callable[[int], None]  # bytes read from FFmpeg
    stalled: Callable[[float], None]  # no media for that many seconds
    viewers_gone: Callable[[], Awaitable[str]] | None = None  # returns UNWATCHED
    packet: Callable[[FlvItem], None] | None = None  # the video once more, packet by packet


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
        plan: Plan | None = None,
    ) -> None:
        self._spec = spec
        self._settings = settings
        self._ffmpeg = ffmpeg
        self._stop = stop
        self._hooks = hooks
        self._log = log
        self.plan = plan or FIRST_PLAN  # once confirmed, the plan for the camera's next run
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._last_media = time.monotonic()
        self.confirmed = False  # the running FFmpeg described the camera as planned
        self._dump = InputDump()
        self._described: asyncio.Future[MediaInfo] | None = None
        self._held: list[InitSegment | Fragment | FlvItem] = []
        self._packet_fd: int | None = None  # the running FFmpeg's packet pipe, as it names it
        self._output_seen = asyncio.Event()

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
        plan = self.plan
        # The planned run, then one for the facts it reported, then one more when that run's
        # tiny probe found no picture size: a camera whose SDP lacks SPS/PPS gives the size
        # to a tiny probe only when a video packet happens to come first. A plan only ever
        # gains facts and loses tiny probing, so three runs settle it.
        for _ in range(3):
            replan = await self._stream(plan, attempt)
            if replan is None or self._stop.is_set():
                return
            self._log.info(
                "camera sends video=%s audio=%s: restarting ffmpeg for it",
                replan.info.video_codec,
                replan.info.audio_codec,
            )
            plan = self.plan = replan
        attempt.failure = Failure(FailureReason.UNKNOWN, "the camera's streams keep changing")

    async def _stream(self, plan: Plan, attempt: Attempt) -> Plan | None:
        """Run FFmpeg for `plan` until it ends; the plan to run instead when FFmpeg described a
        camera this plan's command was not built for."""
        self.confirmed = False
        self._dump = InputDump()
        self._described = asyncio.get_running_loop().create_future()
        self._held, self._output_seen = [], asyncio.Event()
        attempt.failure, attempt.exit_code, attempt.unwatched = None, None, False
        read_fd, write_fd = os.pipe() if self._takes_packets(plan) else (None, None)
        self._packet_fd = write_fd
        command = self._command(plan, write_fd)
        try:
            process = await self._spawn(command, () if write_fd is None else (write_fd,))
        except BaseException:
            if read_fd is not None:
                os.close(read_fd)
            raise
        finally:
            if write_fd is not None:
                os.close(write_fd)  # FFmpeg holds the only write end: its exit ends the pipe
        if read_fd is not None:
            os.set_blocking(read_fd, False)
        self._last_media = time.monotonic()
        try:
            outcome = await self._watch(process, command, read_fd)
        finally:
            if read_fd is not None:
                os.close(read_fd)  # this pull alone owns it: its reader task has ended
            attempt.exit_code = await child.terminate(process, self._settings.stop_timeout_s)
        if isinstance(outcome, Plan):
            return outcome
        if not self.confirmed and self._dump.facts is not None:
            replan = self._replan(command, self._dump.facts)
            if replan is not None:
                return replan  # FFmpeg failed on a plan that did not fit the camera
        attempt.unwatched = outcome == UNWATCHED
        attempt.failure = outcome if isinstance(outcome, Failure) else None
        if attempt.failure is None and not attempt.unwatched and not self._stop.is_set():
            lines = list(self._stderr)
            attempt.failure = (
                classify_stderr(lines, attempt.exit_code)
                if self._dump.facts is not None
                else self._no_description_failure(lines, attempt)
            )
        return None

    def _no_description_failure(self, lines: list[str], attempt: Attempt) -> Failure:
        """Why a run ended before FFmpeg could describe the camera (it never got its streams)."""
        failure = classify_probe_failure(
            lines, time.monotonic() - attempt.started_monotonic, self._settings.rtsp_timeout_s
        )
        if failure.reason is FailureReason.UNKNOWN and any("Stream #" in line for line in lines):
            return Failure(FailureReason.NO_VIDEO, "Stream map '0:v:0' matches no streams")
        return failure

    def _replan(self, command: FfmpegCommand, facts: MediaInfo) -> Plan | None:
        """The plan for `facts`, None when it gives the same command."""
        plan = self.plan.after(facts)
        wanted = self._command(plan, self._packet_fd)
        return None if wanted == command else plan

    def _takes_packets(self, plan: Plan) -> bool:
        """Whether the stream takes packets and the plan's video can be written twice without
        encoding."""
        return self._hooks.packet is not None and sends_packets(self._spec, plan.info)

    def _command(self, plan: Plan, packet_fd: int | None) -> FfmpegCommand:
        """The FFmpeg command for `plan`, with the packet output on ``packet_fd`` when the plan
        takes packets (`_takes_packets`)."""
        if not self._takes_packets(plan):
            packet_fd = None
        return stream_command(
            self._ffmpeg, self._spec, self._settings, plan.info, plan.fast_probe, packet_fd
        )

    async def _spawn(
        self, command: FfmpegCommand, pass_fds: tuple[int, ...] = ()
    ) -> asyncio.subprocess.Process:
        return await child.spawn(command.argv, command.stdin_bytes, pass_fds)

    async def _confirm(self, pid: int, command: FfmpegCommand) -> Plan:
        """Check FFmpeg's description of the camera against the plan `command` was built from:
        the plan for the facts when they differ; else report the run started, pass on the
        output held until now, and wait for the other tasks to end the run."""
        assert self._described is not None
        described = self._described
        output: asyncio.Future[Any] = asyncio.ensure_future(self._output_seen.wait())
        try:
            waits: set[asyncio.Future[Any]] = {described, output}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not described.done():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DESCRIPTION_GRACE_S):
                        await asyncio.shield(described)
        finally:
            output.cancel()
        if described.done():
            facts = described.result()
            replan = self._replan(command, facts)
            if replan is not None:
                return replan
            if facts.video_codec is None:
                await asyncio.Event().wait()  # FFmpeg fails on its own: no video to map
            self.plan = self.plan.after(facts)
        else:
            self._log.warning("ffmpeg did not describe the camera's streams; trusting the plan")
            facts = self.plan.info
        self.confirmed = True
        self._hooks.started(pid, facts)
        held, self._held = self._held, []
        for item in held:
            self._deliver(item)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def _deliver(self, item: InitSegment | Fragment | FlvItem) -> None:
        if isinstance(item, InitSegment | Fragment):
            self._hooks.item(item)
        elif self._hooks.packet is not None:
            self._hooks.packet(item)

    def _pass_on(self, item: InitSegment | Fragment | FlvItem) -> None:
        """Deliver `item`, or hold it until FFmpeg's description of the camera fits the plan
        (MP4 output held is what `_confirm` waits for besides the description)."""
        if self.confirmed:
            self._deliver(item)
            return
        self._held.append(item)
        if isinstance(item, InitSegment | Fragment):
            self._output_seen.set()

    async def _watch(
        self,
        process: asyncio.subprocess.Process,
        command: FfmpegCommand,
        packets: int | None = None,
    ) -> Failure | Plan | str | None:
        """Run until FFmpeg exits, stalls, writes garbage, describes a camera `command` was not
        built for (the `Plan` for it), nobody watches an on-demand camera (UNWATCHED) or the
        stream is stopped."""
        assert process.stdout is not None and process.stderr is not None
        pump = asyncio.create_task(self._pump(process.stdout))
        tasks: set[asyncio.Task[Any]] = {
            pump,
            asyncio.create_task(self._confirm(process.pid, command)),
            asyncio.create_task(self._read_stderr(process.stderr)),
            asyncio.create_task(self._watchdog()),
            asyncio.create_task(self._stop.wait()),
        }
        if packets is not None:
            tasks.add(asyncio.create_task(self._pump_packets(packets)))
        if self._hooks.viewers_gone is not None:
            tasks.add(asyncio.ensure_future(self._hooks.viewers_gone()))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                result = task.result()
                if isinstance(result, Failure | Plan) or result == UNWATCHED:
                    return result
            if pump in done:  # stdout closed: FFmpeg is ending; let stderr drain its last words
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), self._settings.stop_timeout_s)
            return None
        finally:
            await cancel_and_wait(tasks)

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
                self._pass_on(item)
        return None

    async def _pump_packets(self, fd: int) -> Failure | None:
        """Read the packet pipe (FLV; a non-blocking descriptor the caller closes once this
        task has ended). Read with a reader callback, not a pipe transport: a transport owns
        and closes the descriptor when it likes, which raced with the caller closing it."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(fd, readable.set)
        flv = FlvReader()
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    chunk = os.read(fd, READ_CHUNK_BYTES)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                try:
                    items = flv.feed(chunk)
                except FlvError as error:
                    return Failure(FailureReason.UNKNOWN, f"unreadable ffmpeg packets: {error}")
                for item in items:
                    self._pass_on(item)
        finally:
            loop.remove_reader(fd)
        await asyncio.Event().wait()  # the pipe ended with FFmpeg: stdout's end decides
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
        facts = self._dump.feed(line)
        if facts is not None and self._described is not None and not self._described.done():
            self._described.set_result(facts)
        # The description (and the stream mapping after it) is routine: status shows it.
        routine = self._dump.reading or facts is not None or line.startswith(ROUTINE_LINES)
        harmless = routine or any(marker in line for marker in _HARMLESS)
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
