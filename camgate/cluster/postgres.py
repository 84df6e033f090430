"""Desired state in PostgreSQL: the same `Store` interface as SQLite, for nodes sharing a fleet.

One connection, used by one caller at a time and opened again after any error, so a restarted
or unreachable database costs failed calls, never a stuck node. Every write notifies the other
nodes (`NOTIFY camgate_cameras`) in the transaction that makes it. Schema migrations are
versioned and run under an advisory lock, so nodes starting together migrate once. This module
decides nothing about leases or streams; `camgate.cluster.lease` and `node` do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import psycopg

from camgate.errors import StoreError
from camgate.store import CameraRecord, decode_overrides

CHANNEL = "camgate_cameras"
SCHEMA_VERSION = 2
_MIGRATION_LOCK = 7_270_001  # pg_advisory_xact_lock key: one node migrates at a time
CONNECT_TIMEOUT_S = 3
# Schema version -> the statements that bring the previous version to it.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE cameras (
            camera_id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            overrides TEXT NOT NULL DEFAULT '{}',
            enabled BOOLEAN NOT NULL DEFAULT FALSE,
            on_demand BOOLEAN NOT NULL DEFAULT FALSE,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            revision BIGINT NOT NULL DEFAULT 1,
            owner TEXT,
            lease_until TIMESTAMPTZ,
            epoch BIGINT NOT NULL DEFAULT 0,
            state TEXT
        )""",
        """CREATE TABLE nodes (
            node_id TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
    ],
    2: ["ALTER TABLE cameras ADD COLUMN source TEXT NOT NULL DEFAULT 'api'"],
}


def migrate(url: str) -> None:
    """Bring the database to SCHEMA_VERSION (at start-up, before any coroutine runs)."""
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as db, db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {current} is newer than this camgate ({SCHEMA_VERSION})"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                db.execute(statement)  # type: ignore[arg-type]
        db.execute(
            "INSERT INTO meta(key, value) VALUES('schema_version', %s) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (str(SCHEMA_VERSION),),
        )


def describe(error: BaseException) -> str:
    """One line about a database error (psycopg messages never include the password)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class PostgresStore:
    """The desired state of a fleet in PostgreSQL; `CAMGATE_DATABASE_URL` selects it."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        try:
            migrate(url)
        except psycopg.Error as error:
            raise StoreError(f"cannot open the camera database: {describe(error)}") from None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed:
            # A node paused inside a transaction must not keep row locks from the others.
            idle_ms = int(self.timeout_s * 1000)
            self._connection = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                options=f"-c idle_in_transaction_session_timeout={idle_ms}",
            )
        return self._connection

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.wait_for(connection.close(), 1)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        """A cursor inside one transaction; `StoreError` if the database fails or is slow."""
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout_s):
                    connection = await self._connect()
                    async with connection.transaction(), connection.cursor() as cursor:
                        yield cursor
            except (psycopg.Error, OSError, TimeoutError) as error:
                await self._drop()
                raise StoreError(f"the camera database failed: {describe(error)}") from None

    async def _write(self, sql: str, params: tuple[object, ...], camera_id: str) -> None:
        async with self.transaction() as cursor:
            await cursor.execute(sql, params)  # type: ignore[arg-type]
            await cursor.execute("SELECT pg_notify(%s, %s)", (CHANNEL, camera_id))

    async def load(self) -> list[CameraRecord]:
        async with self.transaction() as cursor:
            await cursor.execute(
                "SELECT camera_id, url, overrides, enabled, on_demand, source FROM cameras "
                "ORDER BY camera_id"
            )
            rows = await cursor.fetchall()
        return [
            CameraRecord(r[0], r[1], decode_overrides(r[2]), r[3], r[4], r[5]) for r in rows
        ]

    async def save(self, record: CameraRecord) -> None:
        await self._write(
            "INSERT INTO cameras(camera_id, url, overrides, enabled, on_demand, source) "
            "VALUES(%s, %s, %s, %s, %s, %s) ON CONFLICT(camera_id) DO UPDATE SET "
            "url=excluded.url, overrides=excluded.overrides, enabled=excluded.enabled, "
            "on_demand=excluded.on_demand, source=excluded.source, updated_at=now(), "
            "revision=cameras.revision + 1",
            (
                record.camera_id,
                record.url,
                json.dumps(record.overrides),
                record.enabled,
                record.on_demand,
                record.source,
            ),
            record.camera_id,
        )

    async def set_enabled(self, camera_id: str, enabled: bool) -> None:
        await self._write(
            "UPDATE cameras SET enabled=%s, updated_at=now(), revision=revision + 1 "
            "WHERE camera_id=%s",
            (enabled, camera_id),
            camera_id,
        )

    async def delete(self, camera_id: str) -> None:
        await self._write("DELETE FROM cameras WHERE camera_id=%s", (camera_id,), camera_id)

    async def ping(self) -> bool:
        try:
            async with self.transaction() as cursor:
                await cursor.execute("SELECT 1")
            return True
        except StoreError:
            return False

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
