"""Camera leases in PostgreSQL: who runs which camera, until when, under which epoch.

A camera that should run is held by at most one node: `owner`, `lease_until` (database clock)
and `epoch`, raised at every claim. A node renews only the leases it holds under the epoch it
claimed them with and only while they are still valid, so a node that was paused or cut off
cannot take a camera back from whoever claimed it meanwhile (fencing by epoch). Claims take
free rows with `SELECT ... FOR UPDATE SKIP LOCKED`: nodes claiming at the same moment get
different cameras and never wait on each other. Nothing here starts or stops a stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from camgate.cluster.postgres import CHANNEL, PostgresStore
from camgate.store import CameraRecord, decode_overrides


@dataclass(frozen=True)
class CameraRow:
    """One camera of the fleet as the database holds it."""

    record: CameraRecord
    revision: int
    owner: str | None
    epoch: int
    state: str | None
    lease_left_s: float | None  # None: not held

    @property
    def camera_id(self) -> str:
        return self.record.camera_id

    @property
    def held(self) -> bool:
        return self.owner is not None and self.lease_left_s is not None and self.lease_left_s > 0


@dataclass(frozen=True)
class NodeRow:
    node_id: str
    url: str


_COLUMNS = (
    "c.camera_id, c.url, c.overrides, c.enabled, c.on_demand, c.revision, c.owner, c.epoch, "
    "c.state, EXTRACT(EPOCH FROM c.lease_until - now())::float8"
)


def _row(values: tuple[object, ...]) -> CameraRow:
    camera_id, url, overrides, enabled, on_demand, revision, owner, epoch, state, left = values
    record = CameraRecord(
        str(camera_id), str(url), decode_overrides(str(overrides)), bool(enabled), bool(on_demand)
    )
    return CameraRow(
        record,
        int(revision),  # type: ignore[call-overload]
        None if owner is None else str(owner),
        int(epoch),  # type: ignore[call-overload]
        None if state is None else str(state),
        None if left is None else float(left),  # type: ignore[arg-type]
    )


class LeaseTable:
    """The lease queries of one node."""

    def __init__(self, store: PostgresStore, node_id: str, ttl_s: float) -> None:
        self.store = store
        self.node_id = node_id
        self.ttl_s = ttl_s

    async def beat(self, url: str) -> None:
        """Say this node is alive (a node is live while its heartbeat is younger than the TTL)."""
        async with self.store.transaction() as cursor:
            await cursor.execute(
                "INSERT INTO nodes(node_id, url, heartbeat_at) VALUES(%s, %s, now()) "
                "ON CONFLICT(node_id) DO UPDATE SET url=excluded.url, heartbeat_at=now()",
                (self.node_id, url),
            )

    async def renew(self, held: dict[str, tuple[int, str]]) -> set[str]:
        """Extend the leases still ours ({camera: (epoch, state)}); returns the renewed ones."""
        if not held:
            return set()
        ids = list(held)
        async with self.store.transaction() as cursor:
            await cursor.execute(
                "UPDATE cameras c SET lease_until = now() + make_interval(secs => %s), "
                "state = v.state "
                "FROM unnest(%s::text[], %s::bigint[], %s::text[]) AS v(camera_id, epoch, state) "
                "WHERE c.camera_id = v.camera_id AND c.owner = %s AND c.epoch = v.epoch "
                "AND c.lease_until > now() AND c.enabled RETURNING c.camera_id",
                (
                    self.ttl_s,
                    ids,
                    [held[i][0] for i in ids],
                    [held[i][1] for i in ids],
                    self.node_id,
                ),
            )
            return {str(row[0]) for row in await cursor.fetchall()}

    async def snapshot(self) -> tuple[list[CameraRow], list[NodeRow]]:
        """Every camera with its lease, and the live nodes."""
        async with self.store.transaction() as cursor:
            await cursor.execute(f"SELECT {_COLUMNS} FROM cameras c ORDER BY c.camera_id")
            cameras = [_row(values) for values in await cursor.fetchall()]
            await cursor.execute(
                "SELECT node_id, url FROM nodes "
                "WHERE heartbeat_at > now() - make_interval(secs => %s) ORDER BY node_id",
                (self.ttl_s,),
            )
            nodes = [NodeRow(str(r[0]), str(r[1])) for r in await cursor.fetchall()]
        return cameras, nodes

    async def claim(self, limit: int) -> list[CameraRow]:
        """Take up to `limit` cameras that should run and that nobody holds."""
        async with self.store.transaction() as cursor:
            await cursor.execute(
                "WITH free AS (SELECT camera_id FROM cameras WHERE enabled "
                "AND (owner IS NULL OR lease_until IS NULL OR lease_until <= now()) "
                "ORDER BY camera_id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "UPDATE cameras c SET owner = %s, epoch = c.epoch + 1, state = NULL, "
                "lease_until = now() + make_interval(secs => %s) "
                f"FROM free WHERE c.camera_id = free.camera_id RETURNING {_COLUMNS}",
                (limit, self.node_id, self.ttl_s),
            )
            return [_row(values) for values in await cursor.fetchall()]

    async def release(self, held: dict[str, int]) -> None:
        """Give up leases ({camera: epoch}) whose streams this node has stopped."""
        if not held:
            return
        ids = list(held)
        async with self.store.transaction() as cursor:
            await cursor.execute(
                "UPDATE cameras c SET owner = NULL, lease_until = NULL, state = NULL "
                "FROM unnest(%s::text[], %s::bigint[]) AS v(camera_id, epoch) "
                "WHERE c.camera_id = v.camera_id AND c.owner = %s AND c.epoch = v.epoch",
                (ids, [held[i] for i in ids], self.node_id),
            )
            await cursor.execute("SELECT pg_notify(%s, '')", (CHANNEL,))

    async def leave(self) -> None:
        """Forget this node (a clean shutdown), so the others count without it at once."""
        async with self.store.transaction() as cursor:
            await cursor.execute("DELETE FROM nodes WHERE node_id = %s", (self.node_id,))
