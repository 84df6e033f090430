"""Starting and stopping FFmpeg children so that none outlives its stream or the server.

Each child gets its own process group and a parent-death signal (Linux PR_SET_PDEATHSIG), so a
server killed with SIGKILL takes its children with it. util-linux's `setpriv --pdeathsig` sets
that signal where it is installed (the signal survives its exec of the child): a Python pre-exec
hook would make every start fork the whole server instead of vfork, 16 ms with the event loop
blocked at the server's size instead of 4 ms (docs/benchmarks.md, one FFmpeg child), which 32
cameras started at once pay in turn.
Without setpriv the pre-exec hook does it. Stopping is polite first (SIGTERM lets
FFmpeg finish its output) and forcible after a timeout. Never through a shell. What a child must
not show in its argv (a camera URL) goes to its stdin, written and closed right after the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence

_PR_SET_PDEATHSIG = 1
# Starting a child takes up to 8 descriptors at once (3 pipes and the exec-error pipe).
SPARE_DESCRIPTORS = 16


@functools.cache
def _libc() -> ctypes.CDLL:
    # The process's own symbols include libc's prctl; ctypes.util.find_library would run
    # `ldconfig -p` in a subprocess at every spawn.
    return ctypes.CDLL(None, use_errno=True)


def _death_signal_setter() -> Callable[[], None] | None:
    """A pre-exec hook that asks the kernel to SIGKILL the child when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = _libc()
    parent_pid = os.getpid()

    def set_death_signal() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return set_death_signal


@functools.cache
def death_signal_wrapper() -> list[str]:
    """The argv prefix that starts a child with SIGKILL as its parent-death signal ([] when
    setpriv is not there or cannot do it: then `_death_signal_setter` does it)."""
    path = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if path is None:
        return []
    wrapper = [path, "--pdeathsig", "KILL", "--"]
    try:
        checked = subprocess.run([*wrapper, "true"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return wrapper if checked.returncode == 0 else []


class SpawnError(Exception):
    """The child could not be started (no such executable, out of file descriptors, ...)."""


async def spawn(
    argv: Sequence[str], stdin_bytes: bytes = b"", pass_fds: Sequence[int] = ()
) -> asyncio.subprocess.Process:
    """Start `argv` with stdout and stderr piped, in its own process group, dying with us;
    `stdin_bytes` is its whole stdin (closed once written), else stdin is /dev/null;
    `pass_fds` are inherited under the same numbers."""
    wrapper = death_signal_wrapper()
    if wrapper and argv and shutil.which(argv[0]) is None:
        # setpriv would start and then fail to run it: say so as the direct start would.
        raise SpawnError(f"cannot start {os.path.basename(argv[0])}: no such executable")
    try:
        process = await asyncio.create_subprocess_exec(
            *wrapper,
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin_bytes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=None if wrapper else _death_signal_setter(),
            pass_fds=tuple(pass_fds),
        )
    except OSError as error:
        name = os.path.basename(argv[0]) if argv else "?"
        detail = f"{error.strerror or error}{_descriptor_use()}"
        raise SpawnError(f"cannot start {name}: {detail}") from error
    if stdin_bytes:
        try:
            await _feed_stdin(process, stdin_bytes)
        except BaseException:
            kill_group(process)
            await process.wait()
            raise
    return process


def _descriptor_use() -> str:
    """' (N of LIMIT file descriptors in use)' when few are left: uvloop reports running out of
    them as "Unknown error -1", which alone would not tell an operator what to fix."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        in_use = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
    except OSError as error:
        return " (out of file descriptors)" if error.errno == errno.EMFILE else ""
    if limit == resource.RLIM_INFINITY or limit - in_use > SPARE_DESCRIPTORS:
        return ""
    return f" ({in_use} of {limit} file descriptors in use)"


async def _feed_stdin(process: asyncio.subprocess.Process, data: bytes) -> None:
    """Write all of `data` and close stdin; a child that exits first simply has no reader."""
    stdin = process.stdin
    assert stdin is not None
    # uvloop raises RuntimeError when writing to a pipe it has already closed.
    if not stdin.transport.is_closing():
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()
    stdin.close()


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
