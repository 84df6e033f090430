"""The stream service's bookkeeping: the camera limit, per-camera locks, bad stored rows.

FFmpeg is a stand-in that waits until it is stopped, so every started stream stays `starting`:
these tests are about the manager, not about media.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from camgate.camera import CameraSpec, Overrides
from camgate.config import Settings
from camgate.errors import AlreadyRunning, NotFound, TooManyCameras
from camgate.manager import CameraLocks, StreamManager
from camgate.store import CameraRecord, SqliteStore

URL = "rtsp://admin:s3cret@127.0.0.1:9/live"
OTHER_URL = "rtsp://127.0.0.1:9/other"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    ffmpeg = tmp_path / "ffmpeg"
    ffmpeg.write_text("#!/bin/sh\nexec sleep 60\n")
    ffmpeg.chmod(0o755)
    return Settings(
        CAMGATE_DATA_DIR=str(tmp_path), FFMPEG_PATH=str(ffmpeg), STOP_TIMEOUT=1, MAX_CAMERAS=3
    )


@pytest.fixture
async def manager(settings: Settings) -> AsyncIterator[StreamManager]:
    manager = StreamManager(settings)
    yield manager
    await manager.close()


def camera_ids(manager: StreamManager) -> list[str]:
    return [stream.spec.camera_id for stream in manager.streams]


async def stored_ids(manager: StreamManager) -> list[str]:
    return sorted(record.camera_id for record in await manager.store.load())


def rows(path: Path) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT * FROM cameras ORDER BY camera_id").fetchall()


# ----- camera limit ----------------------------------------------------------------------------
async def test_a_camera_beyond_max_cameras_is_refused_and_nothing_changes(
    manager: StreamManager,
) -> None:
    await manager.start("a", URL)
    await manager.put(CameraSpec("b", URL), enabled=False)
    await manager.put(CameraSpec("c", URL), enabled=True)

    with pytest.raises(TooManyCameras, match=r"Camera limit reached \(MAX_CAMERAS=3\)"):
        await manager.start("d", URL)
    with pytest.raises(TooManyCameras, match="delete a camera first"):
        await manager.put(CameraSpec("d", URL), enabled=False)

    assert camera_ids(manager) == ["a", "b", "c"] == await stored_ids(manager)
    # The cameras that exist can still be changed, and a delete makes room.
    await manager.put(CameraSpec("b", OTHER_URL, Overrides(audio="none")), enabled=True)
    await manager.restart("a")
    await manager.delete("c")
    await manager.start("d", URL)
    assert camera_ids(manager) == ["a", "b", "d"] == await stored_ids(manager)


# ----- locks -----------------------------------------------------------------------------------
@pytest.mark.parametrize("operation", ["stop", "restart", "delete"])
async def test_commands_on_an_unknown_camera_leave_nothing_behind(
    manager: StreamManager, operation: str
) -> None:
    for attempt in range(50):
        with pytest.raises(NotFound):
            await getattr(manager, operation)(f"ghost-{attempt}")
        with pytest.raises(NotFound):
            manager.get(f"ghost-{attempt}")
    assert len(manager._locks) == 0
    assert manager.summary()["totalCount"] == 0 and await stored_ids(manager) == []


async def test_a_lock_lives_exactly_while_someone_holds_or_waits_for_it() -> None:
    locks = CameraLocks()
    trace: list[str] = []

    async def operation(name: str) -> None:
        async with locks.hold("cam"):
            trace.append(f"{name} in")
            await asyncio.sleep(0.01)
            trace.append(f"{name} out")

    await asyncio.gather(*(operation(name) for name in "abc"))
    assert trace == ["a in", "a out", "b in", "b out", "c in", "c out"]
    assert len(locks) == 0

    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("cam"):
            await release.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(operation("cancelled"))
    await asyncio.sleep(0)
    assert len(locks) == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await held
    assert len(locks) == 0 and "cancelled in" not in trace


async def test_delete_racing_restarts_gives_each_request_success_or_not_found(
    manager: StreamManager,
) -> None:
    await manager.start("cam", URL)
    launch = asyncio.create_task
    tasks = [launch(manager.restart("cam")) for _ in range(4)]
    deleted = launch(manager.delete("cam"))
    tasks += [deleted, launch(manager.put(CameraSpec("cam", URL), enabled=True))]
    tasks += [launch(manager.restart("cam")) for _ in range(6)]
    # Requests that arrive once the delete is done queue behind those still waiting.
    await asyncio.wait([deleted])
    tasks += [launch(manager.restart("cam")) for _ in range(6)]
    tasks += [launch(manager.stop("cam")), launch(manager.delete("cam"))]
    results = await asyncio.gather(*tasks, return_exceptions=True)

    unexpected = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, NotFound | AlreadyRunning) for r in unexpected), unexpected
    assert len(manager._locks) == 0
    assert camera_ids(manager) == await stored_ids(manager) == []


# ----- start-up with rows an older version wrote -----------------------------------------------
async def test_an_invalid_stored_row_is_skipped_with_one_line_and_kept(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    path = settings.data_dir / "camgate.db"
    store = SqliteStore(path)
    await store.save(CameraRecord("good", URL, {"audio": "none"}, True))
    await store.close()
    bad_rows = [
        ("fast", URL, json.dumps({"framerate": 500}), 1),
        ("at-sign", "rtsp://admin:Adm@123@10.0.0.5/live", "{}", 1),
        ("garbled", URL, "{not json", 0),
    ]
    with closing(sqlite3.connect(path)) as db, db:
        db.executemany(
            "INSERT INTO cameras(camera_id, url, overrides, enabled) VALUES(?, ?, ?, ?)", bad_rows
        )
    before = rows(path)

    manager = StreamManager(settings, store=SqliteStore(path))
    with caplog.at_level(logging.INFO, logger="camgate.manager"):
        await manager.open()
    try:
        assert camera_ids(manager) == ["good"]
        assert manager.get("good").active
        skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        assert len(skipped) == 3, skipped
        assert any(
            "camera fast skipped" in line and "overrides.framerate" in line for line in skipped
        )
        assert any("camera at-sign skipped" in line and "rtspUrl" in line for line in skipped)
        assert any("camera garbled skipped" in line and "overrides" in line for line in skipped)
        assert "Adm@123" not in caplog.text and "s3cret" not in caplog.text
    finally:
        await manager.close()
    assert rows(path) == before
