"""Keeping the running cameras in step with the camera file: applied again when the file changes
(checked every couple of seconds) or on SIGHUP. A file that does not parse is refused whole, with
its file/line message, and the running cameras stay as they were."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from camgate.camera_file import load_camera_file
from camgate.errors import InvalidInput
from camgate.manager import StreamManager
from camgate.tasks import cancel_and_wait

log = logging.getLogger("camgate.reload")

CHECK_INTERVAL_S = 2.0


def file_stamp(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class CameraFileReloader:
    """Owns one task; `start()` in the app's start-up, `await stop()` at shutdown."""

    def __init__(self, path: Path, manager: StreamManager) -> None:
        self._path = path
        self._manager = manager
        self._wake = asyncio.Event()
        self._stamp = file_stamp(path)
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="camera-file")
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # Only in the main thread of a server; an embedding app may not allow it.
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._wake.set)

    async def stop(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), CHECK_INTERVAL_S)
            asked = self._wake.is_set()
            self._wake.clear()
            stamp = file_stamp(self._path)
            if asked or stamp != self._stamp:
                self._stamp = stamp
                await self.reload("SIGHUP" if asked else "the file changed")

    async def reload(self, why: str) -> None:
        try:
            declared = load_camera_file(self._path)
        except InvalidInput as error:
            log.error("camera file not applied (%s): %s; the running cameras stay", why, error)
            return
        await self._manager.apply_file(declared)
        self.reloads += 1
        log.info("camera file applied (%s): %d cameras", why, len(declared))
