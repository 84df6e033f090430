"""One node of a fleet: holds camera leases and runs exactly the cameras it holds.

Every heartbeat (and within milliseconds of a NOTIFY from any node) the node renews its leases,
says it is alive, reads the fleet, follows changes to the cameras it runs, claims free cameras
up to its fair share and gives one away when it holds too many. A watchdog stops every stream
whose lease this node could not renew one heartbeat before the lease ends, whether the database
is down, the network cut or this process was paused: a camera never runs on two nodes for longer
than one heartbeat. It starts and stops streams only through the manager's placement hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

import psycopg

from camgate.camera import CameraSpec
from camgate.cluster.lease import CameraRow, LeaseTable, NodeRow
from camgate.cluster.placement import MoveBudget, claim_limit, should_give_away
from camgate.cluster.postgres import CHANNEL, PostgresStore
from camgate.config import Settings
from camgate.errors import InvalidInput, StoreError
from camgate.manager import StreamManager, spec_from_record
from camgate.state import StreamState
from camgate.status import StreamStatus
from camgate.tasks import cancel_and_wait

log = logging.getLogger("camgate.cluster")

NOTIFY_DEBOUNCE_S = 0.02  # a burst of writes (a fleet created at once) costs one round
WATCHDOG_MIN_S = 0.05
EXPIRY_SLACK_S = 0.05  # claim just after a foreign lease ends, not one heartbeat later


@dataclass
class Held:
    """A lease this node holds: its epoch, the camera revision it runs, when to fence."""

    epoch: int
    revision: int
    fence_at: float  # monotonic; the stream stops here unless the lease is renewed first


def default_advertise_url(settings: Settings) -> str:
    wildcard = settings.host in ("0.0.0.0", "::", "")
    host = socket.gethostname() if wildcard else settings.host
    return f"http://{host}:{settings.port}"


class ClusterNode:
    """The placement of a camgate process whose store is PostgreSQL (see `Placement`)."""

    def __init__(self, settings: Settings, store: PostgresStore) -> None:
        if settings.heartbeat_s * 3 > settings.lease_ttl_s:
            raise InvalidInput("CAMGATE_LEASE_TTL must be at least 3 x CAMGATE_HEARTBEAT")
        self.settings = settings
        self.store = store
        self.node_id = settings.node_id or socket.gethostname()
        self.url = (settings.advertise_url or default_advertise_url(settings)).rstrip("/")
        self.leases = LeaseTable(store, self.node_id, settings.lease_ttl_s)
        self._held: dict[str, Held] = {}
        self._fleet: dict[str, CameraRow] = {}
        self._nodes: list[NodeRow] = []
        self._budget = MoveBudget(settings.rebalance_moves, settings.rebalance_interval_s)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._manager: StreamManager | None = None
        self._invalid_logged: set[tuple[str, int]] = set()
        self.database_ok = False

    # ----- Placement -------------------------------------------------------------------------
    async def open(self, manager: StreamManager) -> None:
        self._manager = manager
        for name, loop in (("lease", self._lease_loop), ("fence", self._fence_loop)):
            self._tasks.add(asyncio.create_task(loop(), name=f"cluster:{name}"))
        self._tasks.add(asyncio.create_task(self._listen_loop(), name="cluster:listen"))
        log.info("node %s joins the fleet as %s", self.node_id, self.url)

    def changed(self, camera_id: str) -> None:
        self._wake.set()

    def remote_owner(self, camera_id: str) -> str | None:
        """The base URL of the live node that runs `camera_id`, if it is another one."""
        row = self._fleet.get(camera_id)
        if row is None or camera_id in self._held or not row.held or row.owner == self.node_id:
            return None
        return next((node.url for node in self._nodes if node.node_id == row.owner), None)

    def describe(self, status: StreamStatus) -> StreamStatus:
        camera_id = status.cameraId
        if camera_id in self._held:
            return status.model_copy(update={"owner": self.node_id, "ownerUrl": self.url})
        row = self._fleet.get(camera_id)
        url = self.remote_owner(camera_id)
        if row is None or url is None:
            return status
        known = {str(state) for state in StreamState}
        state = StreamState(row.state) if row.state in known else status.state
        return status.model_copy(update={"owner": row.owner, "ownerUrl": url, "state": state})

    def fleet(self) -> dict[str, Any]:
        loads = self._loads()
        return {
            "nodeId": self.node_id,
            "database": self.database_ok,
            "nodes": [
                {"nodeId": n.node_id, "url": n.url, "cameras": loads.get(n.node_id, 0)}
                for n in self._nodes
            ],
        }

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        held = {camera_id: lease.epoch for camera_id, lease in self._held.items()}
        for camera_id in list(self._held):
            await self._stop_here(camera_id)
        with contextlib.suppress(StoreError):
            await self.leases.release(held)  # the others claim them at once, not after the TTL
            await self.leases.leave()
        log.info("node %s left the fleet, %d cameras handed over", self.node_id, len(held))

    # ----- the lease loop --------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        while True:
            delay_s = self.settings.heartbeat_s
            try:
                delay_s = await self._round()
                if not self.database_ok:
                    log.info("the database answers again")
                self.database_ok = True
            except StoreError as error:
                if self.database_ok:
                    log.warning("lease round failed, retrying each heartbeat: %s", error)
                self.database_ok = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay_s)
                await asyncio.sleep(NOTIFY_DEBOUNCE_S)
            self._wake.clear()

    async def _round(self) -> float:
        """One heartbeat; returns how long to wait before the next one."""
        sent = time.monotonic()
        await self._renew(sent)
        await self.leases.beat(self.url)
        cameras, self._nodes = await self.leases.snapshot()
        self._fleet = {row.camera_id: row for row in cameras}
        await self._follow(cameras)
        await self._claim(cameras, sent)
        await self._give_away(cameras)
        return self._next_delay(cameras)

    async def _renew(self, sent: float) -> None:
        manager = self._require_manager()
        held = {
            camera_id: (lease.epoch, manager.state_of(camera_id) or "")
            for camera_id, lease in self._held.items()
        }
        renewed = await self.leases.renew(held)
        fence_at = sent + self.settings.lease_ttl_s - self.settings.heartbeat_s
        for camera_id in list(self._held):
            lease = self._held.get(camera_id)
            if lease is None:
                continue
            if camera_id in renewed:
                lease.fence_at = fence_at
            else:
                log.warning("lease of %s lost: stopping it", camera_id)
                await self._stop_here(camera_id)

    async def _follow(self, cameras: list[CameraRow]) -> None:
        """Apply what the API changed: new, edited, stopped and deleted cameras."""
        manager = self._require_manager()
        present = {row.camera_id for row in cameras}
        for camera_id in manager.camera_ids:
            if camera_id not in present:
                self._held.pop(camera_id, None)
                await manager.idle_here(camera_id, None)
        for row in cameras:
            spec = self._spec(row)
            lease = self._held.get(row.camera_id)
            if spec is None:
                continue
            if lease is None:
                await manager.idle_here(row.camera_id, spec)
            elif not row.record.enabled:
                await self._stop_here(row.camera_id)
                await self.leases.release({row.camera_id: lease.epoch})
            elif row.revision != lease.revision:
                lease.revision = row.revision
                await manager.run_here(spec, fresh=True)

    async def _claim(self, cameras: list[CameraRow], sent: float) -> None:
        wanted = sum(1 for row in cameras if row.record.enabled)
        free = [row for row in cameras if row.record.enabled and not row.held]
        limit = claim_limit(
            len(self._held), wanted, len(self._nodes), self.settings.max_concurrent_streams
        )
        if not free or limit <= 0:
            return
        manager = self._require_manager()
        fence_at = sent + self.settings.lease_ttl_s - self.settings.heartbeat_s
        for row in await self.leases.claim(limit):
            spec = self._spec(row)
            self._held[row.camera_id] = Held(row.epoch, row.revision, fence_at)
            self._fleet[row.camera_id] = row
            if spec is not None:
                log.info("claimed %s (epoch %d)", row.camera_id, row.epoch)
                await manager.run_here(spec, fresh=True)

    async def _give_away(self, cameras: list[CameraRow]) -> None:
        wanted = sum(1 for row in cameras if row.record.enabled)
        if not should_give_away(self.node_id, self._loads(), wanted):
            return
        if not self._budget.take(time.monotonic()):
            return
        camera_id = max(self._held)
        epoch = self._held[camera_id].epoch
        log.info("handing %s over to a less-loaded node", camera_id)
        await self._stop_here(camera_id)
        await self.leases.release({camera_id: epoch})

    def _next_delay(self, cameras: list[CameraRow]) -> float:
        """A heartbeat, or less when a foreign lease ends sooner (its camera is then free)."""
        ends = [
            row.lease_left_s
            for row in cameras
            if row.lease_left_s is not None and row.record.enabled and row.owner != self.node_id
        ]
        soonest = min(ends, default=self.settings.heartbeat_s) + EXPIRY_SLACK_S
        return max(WATCHDOG_MIN_S, min(self.settings.heartbeat_s, soonest))

    # ----- fencing and notifications ---------------------------------------------------------
    async def _fence_loop(self) -> None:
        while True:
            now = time.monotonic()
            for camera_id, lease in list(self._held.items()):
                if lease.fence_at <= now and self._held.get(camera_id) is lease:
                    log.warning("lease of %s not renewed in time: stopping it", camera_id)
                    await self._stop_here(camera_id)
            soonest = min((lease.fence_at for lease in self._held.values()), default=now + 1)
            await asyncio.sleep(min(1.0, max(WATCHDOG_MIN_S, soonest - time.monotonic())))

    async def _listen_loop(self) -> None:
        """Wake the lease loop on every NOTIFY; polling each heartbeat covers a lost listener."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.store.url, autocommit=True, connect_timeout=3
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self._wake.set()  # whatever changed while nobody listened
                    async for _ in connection.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError):
                pass
            await asyncio.sleep(self.settings.heartbeat_s)

    # ----- small helpers ---------------------------------------------------------------------
    async def _stop_here(self, camera_id: str) -> None:
        """Drop the lease from this node's view and stop the camera's stream here."""
        self._held.pop(camera_id, None)
        manager = self._require_manager()
        if camera_id in manager.camera_ids:
            await manager.idle_here(camera_id, manager.get(camera_id).spec)

    def _spec(self, row: CameraRow) -> CameraSpec | None:
        try:
            return spec_from_record(row.record)
        except InvalidInput as error:
            if (row.camera_id, row.revision) not in self._invalid_logged:
                self._invalid_logged.add((row.camera_id, row.revision))
                log.error("camera %s skipped: invalid stored settings (%s)", row.camera_id, error)
            return None

    def _loads(self) -> dict[str, int]:
        loads = {node.node_id: 0 for node in self._nodes}
        for row in self._fleet.values():
            if row.record.enabled and row.held and row.owner in loads:
                loads[row.owner] += 1
        loads[self.node_id] = len(self._held)
        return loads

    def _require_manager(self) -> StreamManager:
        assert self._manager is not None, "ClusterNode.open() was not called"
        return self._manager
