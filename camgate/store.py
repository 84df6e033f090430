"""Durable desired state: which cameras exist, their URL and overrides, and whether they run.

SQLite in WAL mode under the data directory; every write is committed before it returns, so an
accepted API change survives a SIGKILL. The file holds camera credentials: it is created 0600.
This module never decides anything about streams; `StreamManager` does.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from camgate.errors import StoreError

SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cameras (
    camera_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    overrides TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    on_demand INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT 'api'
);
"""
# Schema version -> the statements that bring the previous version to it.
_MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE cameras ADD COLUMN on_demand INTEGER NOT NULL DEFAULT 0"],
    3: ["ALTER TABLE cameras ADD COLUMN source TEXT NOT NULL DEFAULT 'api'"],
}


@dataclass(frozen=True)
class CameraRecord:
    """One stored camera. Read back, it is untrusted until the manager validates it: a row
    written by an older version may hold values (or overrides text) this one refuses."""

    camera_id: str
    url: str
    overrides: object
    enabled: bool
    on_demand: bool = False
    source: str = "api"  # "file": declared in the camera file, which wins over the API


def decode_overrides(text: str) -> object:
    """The stored overrides JSON, or the text itself when it is not JSON (refused later)."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


class Store(Protocol):
    """What the manager needs from a desired-state store (SQLite here; PostgreSQL later).

    Every method is a coroutine: a store over the network must never block the event loop."""

    async def load(self) -> list[CameraRecord]: ...
    async def save(self, record: CameraRecord) -> None: ...
    async def set_enabled(self, camera_id: str, enabled: bool) -> None: ...
    async def delete(self, camera_id: str) -> None: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class MemoryStore:
    """A store that forgets everything at exit, for library use and unit tests."""

    def __init__(self) -> None:
        self._records: dict[str, CameraRecord] = {}

    async def load(self) -> list[CameraRecord]:
        return list(self._records.values())

    async def save(self, record: CameraRecord) -> None:
        self._records[record.camera_id] = record

    async def set_enabled(self, camera_id: str, enabled: bool) -> None:
        record = self._records.get(camera_id)
        if record is not None:
            self._records[camera_id] = replace(record, enabled=enabled)

    async def delete(self, camera_id: str) -> None:
        self._records.pop(camera_id, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._records.clear()


class SqliteStore:
    """The desired state in `<data_dir>/camgate.db`; queries run in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.touch(mode=0o600)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            self._db.execute("SELECT count(*) FROM cameras").fetchone()
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"cannot open the camera database {path}: {error}") from None

    def _migrate(self) -> None:
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {row[0]} is newer than this camgate ({SCHEMA_VERSION})"
            )
        else:
            for version in range(int(row[0]) + 1, SCHEMA_VERSION + 1):
                self._upgrade(version)
        os.chmod(self.path, 0o600)

    def _upgrade(self, version: int) -> None:
        """Apply one migration and record it, in one transaction."""
        self._db.execute("BEGIN")
        try:
            for statement in _MIGRATIONS[version]:
                self._db.execute(statement)
            self._db.execute(
                "UPDATE meta SET value=? WHERE key='schema_version'", (str(version),)
            )
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._db.execute("ROLLBACK")
            raise

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            with self._lock:
                self._db.execute(sql, params)
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the camera database: {error}") from None

    def _load(self) -> list[CameraRecord]:
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT camera_id, url, overrides, enabled, on_demand, source FROM cameras "
                    "ORDER BY camera_id"
                ).fetchall()
            return [
                CameraRecord(r[0], r[1], decode_overrides(r[2]), bool(r[3]), bool(r[4]), r[5])
                for r in rows
            ]
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the camera database {self.path}: {error}") from None

    def _save(self, record: CameraRecord) -> None:
        self._write(
            "INSERT INTO cameras(camera_id, url, overrides, enabled, on_demand, source) "
            "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(camera_id) DO UPDATE SET url=excluded.url, "
            "overrides=excluded.overrides, enabled=excluded.enabled, "
            "on_demand=excluded.on_demand, source=excluded.source, "
            "updated_at=strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            (
                record.camera_id,
                record.url,
                json.dumps(record.overrides),
                int(record.enabled),
                int(record.on_demand),
                record.source,
            ),
        )

    def _set_enabled(self, camera_id: str, enabled: bool) -> None:
        self._write(
            "UPDATE cameras SET enabled=?, updated_at=strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
            "WHERE camera_id=?",
            (int(enabled), camera_id),
        )

    def _delete(self, camera_id: str) -> None:
        self._write("DELETE FROM cameras WHERE camera_id=?", (camera_id,))

    def _ping(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def _close(self) -> None:
        with self._lock:
            self._db.close()

    async def load(self) -> list[CameraRecord]:
        return await asyncio.to_thread(self._load)

    async def save(self, record: CameraRecord) -> None:
        await asyncio.to_thread(self._save, record)

    async def set_enabled(self, camera_id: str, enabled: bool) -> None:
        await asyncio.to_thread(self._set_enabled, camera_id, enabled)

    async def delete(self, camera_id: str) -> None:
        await asyncio.to_thread(self._delete, camera_id)

    async def ping(self) -> bool:
        return await asyncio.to_thread(self._ping)

    async def close(self) -> None:
        await asyncio.to_thread(self._close)
