"""Starting and stopping FFmpeg children so that none outlives its stream or the server.

Each child gets its own process group and a parent-death signal (Linux PR_SET_PDEATHSIG), so a
server killed with SIGKILL takes its children with it. Stopping is polite first (SIGTERM lets
FFmpeg finish its output) and forcible after a timeout. Never through a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable, Sequence

_PR_SET_PDEATHSIG = 1


def _death_signal_setter() -> Callable[[], None] | None:
    """A pre-exec hook that asks the kernel to SIGKILL the child when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent_pid = os.getpid()

    def set_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return set_death_signal


async def spawn(argv: Sequence[str]) -> asyncio.subprocess.Process:
    """Start `argv` with stdout and stderr piped, in its own process group, dying with us."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_death_signal_setter(),
    )


async def terminate(process: asyncio.subprocess.Process, timeout_s: float) -> int:
    """SIGTERM, then SIGKILL to the whole group after `timeout_s`; returns the exit code."""
    if process.returncode is not None:
        return process.returncode
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        kill_group(process)
        return await process.wait()


def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the child's process group (the child leads it), ignoring a group already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
