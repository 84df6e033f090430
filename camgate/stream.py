"""One camera's stream: the supervisor that pulls the camera (`camgate.pull`), fans what FFmpeg
produces out to the camera's outputs (through the `MediaSink` seam), restarts with backoff and,
for an on-demand camera, pulls it only while someone watches.

A `Stream` owns every task and process it starts and ends them all in `stop()`. It knows nothing
of HTTP. Its camera URL is only ever passed to FFmpeg; status, events and logs show it redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from camgate.camera import CameraSpec, redact_text
from camgate.config import Settings
from camgate.events import EventBus, EventType
from camgate.ffmpeg import Failure, FailureReason, MediaInfo
from camgate.ffmpeg.command import converts_audio
from camgate.flv import FlvItem
from camgate.fmp4 import Fragment, InitSegment
from camgate.outputs.sink import OutputFactory, Outputs
from camgate.pull import UNWATCHED, Attempt, Plan, Pull, PullHooks
from camgate.state import (
    ACTIVE_STATES,
    PULLING_STATES,
    StreamState,
    backoff_delay_s,
    check_transition,
)
from camgate.status import (
    Codecs,
    HlsStatus,
    Playback,
    StreamStatus,
    Transcoding,
    browser_playback,
)

log = logging.getLogger("camgate.stream")

# Cameras lock an account after a few bad logins, and a wrong path does not fix itself: these
# wait the longest delay from the first failure instead of growing towards it.
SLOW_RETRY_REASONS = frozenset({FailureReason.AUTH_FAILED, FailureReason.NOT_FOUND})


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
        self._plan: Plan | None = None  # the codec facts of the last run (camgate.pull)
        self.started_at: datetime | None = None
        self.running_since: datetime | None = None
        self.restart_count = 0
        self.attempt = 0
        self.last_error: str | None = None
        self.last_reason: FailureReason | None = None
        self.next_retry_at: datetime | None = None
        self.bytes_received = 0
        self.pid: int | None = None
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
                attempt = await self._pull()
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

    async def _back_off(self, attempt: Attempt) -> bool:
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

    async def _pull(self) -> Attempt:
        """One FFmpeg run, reporting to this stream; its outputs get a discontinuity after."""
        hooks = PullHooks(
            started=self._on_started,
            item=self._accept,
            received=self._on_received,
            stalled=self._on_stalled,
            viewers_gone=self._viewer_watch if self.spec.on_demand else None,
            packet=self._accept_packet if self._takes_packets() else None,
        )
        pull = Pull(
            self.spec, self._settings, self._ffmpeg, self._stop, hooks, self._log, self._plan
        )
        try:
            return await pull.run()
        finally:
            # A run that never fitted its plan: the next attempt starts from the first plan.
            self._plan = pull.plan if pull.confirmed else None
            self.pid = None
            if self.outputs is not None:
                self.outputs.discontinuity()

    def _on_started(self, pid: int, info: MediaInfo) -> None:
        self.pid = pid
        self.media = info
        self._bus.publish(
            EventType.STARTED,
            self.spec.camera_id,
            pid=pid,
            transcoding=self.transcodes.video or self.transcodes.audio,
        )
        self._log.info(
            "ffmpeg started pid=%d video=%s audio=%s copy=%s",
            pid,
            info.video_codec,
            info.audio_codec,
            not self.spec.overrides.reencode,
        )

    def _on_received(self, size: int) -> None:
        self.bytes_received += size

    def _on_stalled(self, silent_s: float) -> None:
        self._bus.publish(EventType.STALLED, self.spec.camera_id, silentSeconds=round(silent_s, 1))

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
        if self.state is StreamState.STARTING and outputs.ready:
            self.running_since = datetime.now(UTC)
            self.last_reason = None  # recovered: lastError keeps what happened before
            self._transition(StreamState.RUNNING)
            self._bus.publish(EventType.READY, self.spec.camera_id, playlist=self.playlist_path)
            self._log.info("stream ready")

    def _takes_packets(self) -> bool:
        return self.outputs is not None and self.outputs.takes_packets

    def _accept_packet(self, item: FlvItem) -> None:
        if self.outputs is not None:
            self.outputs.add_packet(item)

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
        """Returns UNWATCHED once no output had a viewer for ON_DEMAND_IDLE_S."""
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

    @property
    def transcodes(self) -> Transcoding:
        """What FFmpeg re-encodes: the video when an override asks, the audio when the
        camera's codec does not play in browsers (known once the camera was probed)."""
        video = self.spec.overrides.reencode
        return Transcoding(video=video, audio=converts_audio(self.spec, self.media))

    def status(self) -> StreamStatus:
        """The stream's status as the API and events show it."""
        since = self.running_since
        transcodes = self.transcodes
        stats = self.outputs.stats() if self.outputs is not None else {}
        hls = stats.get("hls")
        return StreamStatus(
            cameraId=self.spec.camera_id,
            state=self.state,
            onDemand=self.spec.on_demand,
            source=self.spec.source,
            consumers=self.outputs.consumers if self.outputs is not None else 0,
            rtspUrl=self.spec.redacted_url,
            playback=Playback(
                hls=self.playlist_path,
                llhls=self.playlist_path,
                plainHls=f"{self.playlist_path}?ll=0",
                player=f"/watch/{self.spec.camera_id}",
                snapshot=f"/api/cameras/{self.spec.camera_id}/snapshot.jpg",
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
            transcoding=transcodes.video or transcodes.audio,
            transcodes=transcodes,
            browserPlayback=browser_playback(self.media.video_codec, transcodes.video),
            codecs=Codecs.model_validate(self.media.as_dict()),
            bytesReceived=self.bytes_received,
            pid=self.pid,
            hls=HlsStatus.model_validate(hls.as_dict()) if hls is not None else HlsStatus(),
            outputs={name: figures.as_dict() for name, figures in stats.items()},
        )
