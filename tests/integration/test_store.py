"""The desired-state store, the same stories against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from camgate.cluster.postgres import SCHEMA_VERSION, PostgresStore
from camgate.errors import StoreError
from camgate.store import CameraRecord, SqliteStore, Store
from tests.support.postgres import PostgresServer

URL = "rtsp://admin:s3cret@127.0.0.1:9/live"
_databases = itertools.count()

Opener = Callable[[], Store]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def fresh_database(server: PostgresServer) -> str:
    """A new empty database on `server`, so every test starts from nothing."""
    name = f"store_{next(_databases)}"
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens the store under test again and again on the same data (a restart)."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "camgate.db")
    url = fresh_database(request.getfixturevalue("postgres"))
    return lambda: PostgresStore(url)


@pytest.fixture
async def store(open_store: Opener) -> AsyncIterator[Store]:
    opened = open_store()
    yield opened
    await opened.close()


async def test_a_saved_camera_is_loaded_back_with_its_overrides(store: Store) -> None:
    await store.save(CameraRecord("cam-1", URL, {"audio": "none"}, True, on_demand=True))
    assert await store.load() == [CameraRecord("cam-1", URL, {"audio": "none"}, True, True)]


async def test_saving_again_replaces_the_camera(store: Store) -> None:
    await store.save(CameraRecord("cam", URL, {}, True))
    await store.save(CameraRecord("cam", "rtsp://127.0.0.1:9/other", {"fps": 10}, False))
    assert await store.load() == [
        CameraRecord("cam", "rtsp://127.0.0.1:9/other", {"fps": 10}, False)
    ]


async def test_enable_disable_and_delete_change_only_that_camera(store: Store) -> None:
    await store.save(CameraRecord("a", URL, {}, True))
    await store.save(CameraRecord("b", URL, {}, True))
    await store.set_enabled("a", False)
    await store.set_enabled("ghost", True)  # an unknown camera is no error
    await store.delete("b")
    await store.delete("ghost")
    assert await store.load() == [CameraRecord("a", URL, {}, False)]


async def test_cameras_survive_a_restart_in_id_order(open_store: Opener) -> None:
    first = open_store()
    for camera_id in ("zeta", "alpha", "mid"):
        await first.save(CameraRecord(camera_id, URL, {}, True))
    await first.close()
    again = open_store()
    try:
        assert [r.camera_id for r in await again.load()] == ["alpha", "mid", "zeta"]
        assert await again.ping()
    finally:
        await again.close()


async def test_postgres_ping_fails_while_the_database_is_down_and_recovers(
    postgres: PostgresServer,
) -> None:
    store = PostgresStore(fresh_database(postgres), timeout_s=2)
    try:
        await store.save(CameraRecord("cam", URL, {}, True))
        postgres.stop()
        assert not await store.ping()
        with pytest.raises(StoreError):
            await store.load()
        postgres.start()
        assert await store.ping()  # the same store object reconnects by itself
        assert [r.camera_id for r in await store.load()] == ["cam"]
    finally:
        await store.close()


def test_postgres_refuses_a_schema_newer_than_this_camgate(postgres: PostgresServer) -> None:
    url = fresh_database(postgres)
    PostgresStore(url)
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("UPDATE meta SET value=%s", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer than this camgate"):
        PostgresStore(url)
