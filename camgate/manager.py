"""The stream service: one `StreamManager` per process owns every camera's `Stream`.

It enforces one stream per camera, MAX_CAMERAS and MAX_CONCURRENT_STREAMS, runs the operations
on one camera one after another, persists desired state before it acknowledges a change,
publishes events and stops everything on shutdown. It knows nothing of HTTP: the API, the CLI
and library users call the same methods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from camgate.camera import CameraSpec, Overrides, validate_camera_id
from camgate.camera_file import DeclaredCamera
from camgate.config import Settings
from camgate.errors import (
    AlreadyRunning,
    CapacityReached,
    InvalidInput,
    NotFound,
    TooManyCameras,
)
from camgate.events import EventBus, EventType
from camgate.ffmpeg import find_ffmpeg
from camgate.outputs.hls import HlsOutput
from camgate.outputs.sink import MediaSink, OutputFactory
from camgate.state import StreamState
from camgate.status import StreamStatus
from camgate.store import CameraRecord, MemoryStore, Store
from camgate.stream import Stream

log = logging.getLogger("camgate.manager")


@dataclass
class _LockEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class CameraLocks:
    """One lock per camera id, kept exactly while someone holds or waits for it.

    Counting the users, instead of dropping a lock when a camera is deleted, means a request
    waiting on it is never left holding a lock that a newcomer no longer sees; and an id that
    was only asked about (a stop of an unknown camera) leaves nothing behind.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _LockEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, camera_id: str) -> AsyncIterator[None]:
        entry = self._entries.setdefault(camera_id, _LockEntry())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[camera_id]


def spec_from_record(record: CameraRecord) -> CameraSpec:
    """The camera a stored row describes; `InvalidInput` naming the field if it is invalid."""
    try:
        overrides = Overrides.model_validate(record.overrides)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in ("overrides", *first["loc"]))
        raise InvalidInput(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
    return CameraSpec(record.camera_id, record.url, overrides, record.on_demand, record.source)


class Placement(Protocol):
    """Decides which node runs each camera when several share one database
    (`camgate.cluster.node.ClusterNode`); a single node has none and runs every camera itself.

    With a placement, commands only write the desired state and tell it `changed`; it starts and
    stops this node's streams through `run_here` and `idle_here`."""

    async def open(self, manager: StreamManager) -> None: ...
    def changed(self, camera_id: str) -> None: ...
    def remote_owner(self, camera_id: str) -> str | None: ...
    def describe(self, status: StreamStatus) -> StreamStatus: ...
    def fleet(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...


class StreamManager:
    """Registry of cameras and their streams; the seed's "stream service"."""

    def __init__(
        self,
        settings: Settings,
        *,
        bus: EventBus | None = None,
        store: Store | None = None,
        outputs: Sequence[OutputFactory] | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.settings = settings
        self.placement = placement
        self.bus = bus or EventBus()
        self.store: Store = store or MemoryStore()
        self.ffmpeg = find_ffmpeg(settings.ffmpeg_path)
        # Library users get LL-HLS; the server passes every output it serves.
        self.outputs: tuple[OutputFactory, ...] = tuple(outputs or (HlsOutput(),))
        self._streams: dict[str, Stream] = {}
        self._locks = CameraLocks()
        self._closed = False

    # ----- queries ---------------------------------------------------------------------------
    def get(self, camera_id: str) -> Stream:
        stream = self._streams.get(camera_id)
        if stream is None:
            raise NotFound(f"Camera {camera_id} not found")
        return stream

    async def demand(self, camera_id: str, output: str) -> MediaSink | None:
        """The named output of a camera a viewer asks for. An idle on-demand camera is woken
        and waited for (up to ON_DEMAND_START_TIMEOUT); 503 when no stream slot is free."""
        stream = self._streams.get(camera_id)
        if stream is None or not stream.spec.on_demand or not stream.active:
            return self.sink(camera_id, output)
        if stream.state is StreamState.IDLE:
            self._check_capacity()
            stream.wake()
        await stream.wait_running(self.settings.on_demand_start_timeout_s)
        return self.sink(camera_id, output)

    def sink(self, camera_id: str, output: str) -> MediaSink | None:
        """The named output of a camera's stream, while it streams."""
        stream = self._streams.get(camera_id)
        outputs = stream.outputs if stream is not None else None
        return outputs.get(output) if outputs is not None else None

    @property
    def streams(self) -> list[Stream]:
        return [self._streams[key] for key in sorted(self._streams)]

    @property
    def active_count(self) -> int:
        return sum(1 for stream in self._streams.values() if stream.pulling)

    @property
    def running(self) -> bool:
        return not self._closed

    def status(self, camera_id: str) -> StreamStatus:
        """One camera's status; with a placement, with its owner and the state it reports."""
        status = self.get(camera_id).status()
        return self.placement.describe(status) if self.placement is not None else status

    def summary(self) -> dict[str, Any]:
        """Every camera's status; with a placement, the whole fleet with each camera's owner."""
        statuses = [self.status(camera_id) for camera_id in sorted(self._streams)]
        summary = {
            "streams": [status.model_dump(mode="json") for status in statuses],
            "activeCount": self.active_count,
            "runningCount": sum(1 for status in statuses if status.state == "running"),
            "maxConcurrentStreams": self.settings.max_concurrent_streams,
            "totalCount": len(self._streams),
        }
        if self.placement is not None:
            summary["cluster"] = self.placement.fleet()
        return summary

    @property
    def camera_ids(self) -> list[str]:
        return sorted(self._streams)

    def _runs_elsewhere(self, camera_id: str) -> bool:
        return self.placement is not None and self.placement.remote_owner(camera_id) is not None

    # ----- commands --------------------------------------------------------------------------
    def _check_new_camera(self, camera_id: str) -> None:
        """Refuse a camera that does not exist yet once MAX_CAMERAS exist."""
        limit = self.settings.max_cameras
        if camera_id not in self._streams and len(self._streams) >= limit:
            raise TooManyCameras(
                f"Camera limit reached (MAX_CAMERAS={limit}): delete a camera first"
            )

    def _check_capacity(self, spec: CameraSpec | None = None) -> None:
        """503 when MAX_CONCURRENT_STREAMS cameras are pulled already (an on-demand camera
        needs a slot only once a viewer wakes it)."""
        if (spec is not None and spec.on_demand) or self.placement is not None:
            return  # with a placement, a camera waits unclaimed until some node has room
        limit = self.settings.max_concurrent_streams
        if self.active_count >= limit:
            raise CapacityReached(f"Maximum concurrent streams reached ({limit})")

    def _register(self, spec: CameraSpec) -> Stream:
        """A (not yet started) stream for `spec`, keeping the camera's counters if it ran."""
        old = self._streams.get(spec.camera_id)
        stream = Stream(spec, self.settings, self.ffmpeg, self.bus, self.outputs)
        if old is not None:
            stream.restart_count = old.restart_count
        self._streams[spec.camera_id] = stream
        return stream

    def _launch(self, spec: CameraSpec) -> Stream:
        """Register and start a stream for `spec`."""
        stream = self._register(spec)
        stream.start()
        return stream

    async def start(self, camera_id: str, url: str, overrides: Overrides | None = None) -> Stream:
        """Start a camera; 409 if it runs, 503 at the limit. Persisted before it returns."""
        spec = CameraSpec(validate_camera_id(camera_id), url, overrides or Overrides())
        async with self._locks.hold(camera_id):
            return await self._start_locked(spec)

    async def start_known(self, camera_id: str) -> Stream:
        """Start a camera that exists, with its own URL and overrides; 404 if it does not."""
        async with self._locks.hold(camera_id):
            return await self._start_locked(self.get(camera_id).spec)

    async def _start_locked(self, spec: CameraSpec) -> Stream:
        current = self._streams.get(spec.camera_id)
        if current is not None and (current.active or self._runs_elsewhere(spec.camera_id)):
            raise AlreadyRunning(f"Stream already running for camera {spec.camera_id}")
        self._check_new_camera(spec.camera_id)
        self._check_capacity(spec)
        if self.placement is not None:
            return await self._desire(spec, enabled=True)
        await self._persist(spec, enabled=True)
        stream = self._launch(spec)
        log.info("stream requested", extra={"camera": spec.camera_id})
        return stream

    async def stop(self, camera_id: str) -> Stream:
        """Stop a camera's stream (its settings are kept for a later start or restart)."""
        async with self._locks.hold(camera_id):
            stream = self.get(camera_id)
            await self.store.set_enabled(camera_id, False)
            if self.placement is not None:
                self.placement.changed(camera_id)
                return stream
            await stream.stop()
        return stream

    async def restart(
        self, camera_id: str, url: str | None = None, overrides: Overrides | None = None
    ) -> Stream:
        """Stop and start again, reusing the last URL and overrides unless new ones are given."""
        async with self._locks.hold(camera_id):
            old = self.get(camera_id)
            spec = CameraSpec(
                camera_id,
                url or old.spec.url,
                overrides if overrides is not None else old.spec.overrides,
                old.spec.on_demand,
                old.spec.source,
            )
            if not old.pulling:
                self._check_capacity(spec)
            if self.placement is not None:
                return await self._desire(spec, enabled=True)  # the owner restarts it
            await self._persist(spec, enabled=True)
            await old.stop()
            stream = self._launch(spec)
            stream.restart_count += 1
        self.bus.publish(EventType.RESTARTED, camera_id, restartCount=stream.restart_count)
        return stream

    async def put(self, spec: CameraSpec, enabled: bool) -> Stream:
        """Create or replace a camera (resource API); it runs afterwards iff `enabled`."""
        async with self._locks.hold(spec.camera_id):
            old = self._streams.get(spec.camera_id)
            was_active = old is not None and old.active
            self._check_new_camera(spec.camera_id)
            if enabled and not (old is not None and old.pulling):
                self._check_capacity(spec)
            if self.placement is not None:
                return await self._desire(spec, enabled=enabled)
            await self._persist(spec, enabled=enabled)
            if old is not None and was_active:
                if old.spec == spec and enabled:
                    return old
                await old.stop()
            return self._launch(spec) if enabled else self._register(spec)

    async def delete(self, camera_id: str) -> None:
        """Stop and forget a camera."""
        async with self._locks.hold(camera_id):
            stream = self.get(camera_id)
            await self.store.delete(camera_id)
            await stream.stop()
            del self._streams[camera_id]
            self.bus.publish(EventType.DELETED, camera_id)
        if self.placement is not None:
            self.placement.changed(camera_id)

    async def _desire(self, spec: CameraSpec, enabled: bool) -> Stream:
        """With a placement: write the desired state and let the camera's owner act on it."""
        await self._persist(spec, enabled=enabled)
        assert self.placement is not None
        self.placement.changed(spec.camera_id)
        return self._streams.get(spec.camera_id) or self._register(spec)

    # ----- placement hooks (called by the placement, never by the API) -------------------------
    async def run_here(self, spec: CameraSpec, fresh: bool = False) -> None:
        """Run `spec` on this node; a running stream is restarted if `fresh` or its spec changed."""
        async with self._locks.hold(spec.camera_id):
            current = self._streams.get(spec.camera_id)
            if current is not None and current.active:
                if current.spec == spec and not fresh:
                    return
                await current.stop()
            self._launch(spec)

    async def idle_here(self, camera_id: str, spec: CameraSpec | None) -> None:
        """Stop the camera's stream on this node if it runs; keep `spec` known (None: forget)."""
        async with self._locks.hold(camera_id):
            current = self._streams.get(camera_id)
            if current is not None and current.active:
                await current.stop()
            if spec is None:
                if self._streams.pop(camera_id, None) is not None:
                    self.bus.publish(EventType.DELETED, camera_id)
            elif current is None or current.spec != spec:
                self._register(spec)

    def state_of(self, camera_id: str) -> str | None:
        stream = self._streams.get(camera_id)
        return None if stream is None else str(stream.state)

    async def _persist(self, spec: CameraSpec, enabled: bool) -> None:
        await self.store.save(
            CameraRecord(
                spec.camera_id,
                spec.url,
                spec.overrides.as_dict(),
                enabled,
                spec.on_demand,
                spec.source,
            )
        )

    # ----- process lifetime ------------------------------------------------------------------
    async def open(self, declared: list[DeclaredCamera] | None = None) -> None:
        """Bring back every camera of the store; the enabled ones start streaming.

        Cameras declared in the YAML file are written over their stored state first, so a
        declared camera starts at every boot; the API can still stop or start it meanwhile.
        A stored row that is no longer valid (written by an older version) is skipped with one
        line naming the camera and the field, and kept in the store as it is.
        """
        records = await self.store.load()
        for record in records:
            try:
                spec = spec_from_record(record)
            except InvalidInput as error:
                log.error(
                    "camera %s skipped: its stored settings are invalid (%s); they are kept "
                    "as they are until the camera is saved again",
                    record.camera_id,
                    error,
                    extra={"camera": str(record.camera_id)},
                )
                continue
            room = self.active_count < self.settings.max_concurrent_streams
            if self.placement is not None:
                self._register(spec)  # the placement claims what this node runs
            elif record.enabled and (room or spec.on_demand):
                self._launch(spec)
            else:
                self._register(spec)
        if len(self._streams) > self.settings.max_cameras:
            log.warning(
                "%d cameras exceed MAX_CAMERAS=%d: new cameras are refused until some are deleted",
                len(self._streams),
                self.settings.max_cameras,
            )
        log.info("restored %d cameras, %d streaming", len(self._streams), self.active_count)
        if declared is not None:
            await self.apply_file(declared)
        if self.placement is not None:
            await self.placement.open(self)

    async def apply_file(self, declared: list[DeclaredCamera]) -> None:
        """Make the cameras from the camera file what the file says (the file wins): new and
        changed ones are saved (and restarted when their settings changed), ones removed from
        the file are stopped and forgotten, unchanged ones are not touched."""
        wanted = {camera.spec.camera_id: camera for camera in declared}
        for camera_id, stream in list(self._streams.items()):
            if stream.spec.source == "file" and camera_id not in wanted:
                log.info("camera %s removed from the camera file", camera_id)
                await self.delete(camera_id)
        for camera in declared:
            current = self._streams.get(camera.spec.camera_id)
            running = current is not None and current.active
            if current is not None and current.spec == camera.spec and running == camera.enabled:
                continue
            try:
                await self.put(camera.spec, camera.enabled)
            except (CapacityReached, TooManyCameras) as error:
                log.error("camera %s from the camera file: %s", camera.spec.camera_id, error)

    async def close(self) -> None:
        """Stop every stream (each FFmpeg politely, then forcibly) and close the store."""
        if self._closed:
            return
        self._closed = True
        if self.placement is not None:
            await self.placement.close()  # stops this node's streams, then hands them over
        active = [stream for stream in self._streams.values() if stream.active]
        log.info("shutting down: stopping %d streams", len(active))
        await asyncio.gather(*(stream.stop() for stream in active), return_exceptions=True)
        await self.store.close()
        log.info("shutdown complete")
