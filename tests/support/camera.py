"""Venv-side control of the synthetic RTSP camera, plus a server that never answers.

`RtspCamera` runs ``rtsp_camera.py`` under the system Python (where GStreamer's RTSP server
bindings live), waits for its READY line and pauses/resumes it over stdin. The camera process
must never outlive the test run: it gets its own process group, a parent-death signal, and it
exits when its stdin closes. `decode_timecode_luma` and `latency_ms` are pure helpers for
checks and benchmarks that read the wall-clock timecode the camera paints into each frame.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

from tests.support.ports import LOOPBACK, free_port, wait_until_bindable

SYSTEM_PYTHON = "/usr/bin/python3"
CAMERA_SCRIPT = Path(__file__).with_name("rtsp_camera.py")
STOP_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 5.0
STDERR_TAIL_CHARS = 2000

TIMECODE_BITS = 32
TIMECODE_BLOCK_PX = 20
TIMECODE_BAND_ROWS = 40
# Same threshold as the browser decoder (camgate/web/static/timecode.js).
TIMECODE_MIN_CONTRAST = 48
# Read each timecode block away from its edges, where compression smears neighbouring blocks.
_TIMECODE_INSET_PX = 4
_PR_SET_PDEATHSIG = 1
# Resolved at import: the preexec_fn runs between fork and exec and must not load anything.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


class CameraError(RuntimeError):
    """The camera process failed to start, died, or did not answer a command."""


class RtspCamera:
    """A synthetic RTSP camera subprocess on 127.0.0.1 (see ``rtsp_camera.py``)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        path: str = "/cam",
        width: int = 640,
        height: int = 360,
        fps: int = 25,
        gop_s: float = 2.0,
        codec: str = "h264",
        audio: str = "none",
        user: str | None = None,
        password: str | None = None,
        auth: str = "digest",
        timecode: bool = False,
        bitrate_kbps: int = 1000,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.path = path
        self._args = [
            f"--port={self.port}", f"--path={path}", f"--width={width}", f"--height={height}",
            f"--fps={fps}", f"--gop-s={gop_s}", f"--bitrate-kbps={bitrate_kbps}",
            f"--codec={codec}", f"--audio={audio}", "--control-stdin",
        ]  # fmt: skip
        if user is not None or password is not None:
            self._args += [f"--user={user}", f"--password={password}", f"--auth={auth}"]
        if timecode:
            self._args.append("--timecode")
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._stdout_buffer = b""

    @property
    def url(self) -> str:
        return f"rtsp://{LOOPBACK}:{self.port}{self.path}"

    def url_with_credentials(self, user: str, password: str) -> str:
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"rtsp://{credentials}@{LOOPBACK}:{self.port}{self.path}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout_s: float = 20) -> None:
        """Spawn the camera and return once it listens; raise `CameraError` if it does not."""
        if self._process is not None:
            raise CameraError("camera already started")
        # A file, not a pipe: nobody reads stderr while the camera runs, a pipe could fill up.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._stdout_buffer = b""
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, str(CAMERA_SCRIPT), *self._args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),
        )
        try:
            ready = self._read_line(time.monotonic() + timeout_s)
            if ready != f"READY {self.url}":
                raise CameraError(f"unexpected camera output {ready!r}{self._stderr_tail()}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the camera, SIGKILL it if it lingers; safe to call any number of times."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for stream in (process.stdin, process.stdout, self._stderr):
            if stream is not None:
                stream.close()
        self._stderr = None

    def restart(self, timeout_s: float = 20) -> None:
        """Stop and start again on the same port, like a camera rebooting."""
        self.stop()
        wait_until_bindable(self.port)
        self.start(timeout_s)

    def pause(self) -> None:
        """Freeze the camera: connections stay open but no media flows until `resume`."""
        self._command("pause")

    def resume(self) -> None:
        self._command("resume")

    def __enter__(self) -> RtspCamera:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _command(self, command: str) -> None:
        process = self._require_running()
        assert process.stdin is not None
        process.stdin.write(f"{command}\n".encode())
        process.stdin.flush()
        answer = self._read_line(time.monotonic() + COMMAND_TIMEOUT_S)
        if answer != f"OK {command}":
            raise CameraError(f"camera answered {answer!r} to {command!r}{self._stderr_tail()}")

    def _read_line(self, deadline: float) -> str:
        """One line of the camera's stdout, or `CameraError` if it dies or the deadline passes."""
        process = self._require_running()
        assert process.stdout is not None
        fd = process.stdout.fileno()
        while b"\n" not in self._stdout_buffer:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise CameraError(f"camera did not answer in time{self._stderr_tail()}")
            readable, _, _ = select.select([fd], [], [], remaining_s)
            if not readable:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                code = process.wait()
                raise CameraError(f"camera exited with code {code}{self._stderr_tail()}")
            self._stdout_buffer += chunk
        line, self._stdout_buffer = self._stdout_buffer.split(b"\n", 1)
        return line.decode(errors="replace").strip()

    def _require_running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise CameraError("camera is not running")
        return self._process

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace")[-STDERR_TAIL_CHARS:]
        return f"; camera stderr:\n{tail}" if tail else ""


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies.

    Linux ties PR_SET_PDEATHSIG to the thread that forked, so it is only used from the main
    thread; from any thread the camera still exits when its stdin (our pipe) closes.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def set_pdeathsig() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_pdeathsig


def decode_timecode_luma(gray: bytes, width: int, height: int) -> int:
    """The 32-bit ms timecode painted in a GRAY8 frame: bit = mean(top band) > mean(bottom).

    Raises `ValueError` for a frame without a readable timecode (any block's two bands closer
    than `TIMECODE_MIN_CONTRAST` in mean luma), so garbage is never decoded into a time.
    """
    if width < TIMECODE_BITS * TIMECODE_BLOCK_PX or height < 2 * TIMECODE_BAND_ROWS:
        raise ValueError(f"a {width}x{height} frame cannot hold the timecode (needs 640x80)")
    if len(gray) < width * height:
        raise ValueError(f"{len(gray)} bytes is less than one {width}x{height} GRAY8 frame")
    value = 0
    for bit in range(TIMECODE_BITS):
        x0 = bit * TIMECODE_BLOCK_PX + _TIMECODE_INSET_PX
        x1 = (bit + 1) * TIMECODE_BLOCK_PX - _TIMECODE_INSET_PX
        top = _band_mean_luma(gray, width, x0, x1, 0)
        bottom = _band_mean_luma(gray, width, x0, x1, TIMECODE_BAND_ROWS)
        if abs(top - bottom) < TIMECODE_MIN_CONTRAST:
            raise ValueError(f"no readable timecode: bit {bit} bands differ by {top - bottom:.0f}")
        value = (value << 1) | (1 if top > bottom else 0)
    return value


def _band_mean_luma(gray: bytes, width: int, x0: int, x1: int, first_row: int) -> float:
    rows = range(
        first_row + _TIMECODE_INSET_PX, first_row + TIMECODE_BAND_ROWS - _TIMECODE_INSET_PX
    )
    total = sum(sum(gray[row * width + x0 : row * width + x1]) for row in rows)
    return total / (len(rows) * (x1 - x0))


def latency_ms(captured_ms_mod32: int, now_ms: int) -> int:
    """Milliseconds from capture to now, across the 2**32 wrap (negative if capture is later)."""
    modulus = 2**TIMECODE_BITS
    delta = (now_ms - captured_ms_mod32) % modulus
    return delta - modulus if delta >= modulus // 2 else delta


class SilentRtspServer:
    """Accepts TCP connections on 127.0.0.1 and never answers: a camera that hangs."""

    def __init__(self, *, port: int | None = None, path: str = "/cam") -> None:
        self.port = port if port is not None else free_port()
        self.path = path
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{LOOPBACK}:{self.port}{self.path}"

    def start(self) -> None:
        if self._listener is not None:
            raise RuntimeError("silent server already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen()
        listener.settimeout(0.1)  # lets the accept loop notice stop()
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._listener is None:
            return
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for connection in [*self._connections, self._listener]:
            connection.close()
        self._connections.clear()
        self._listener = None

    def __enter__(self) -> SilentRtspServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_forever(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._connections.append(connection)  # held open, never read, never answered
