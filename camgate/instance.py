"""What makes one `camgate serve` the only one on its data directory and its port, checked
before any camera is pulled: a lock file holding the PID, and the listening socket bound first.

A second instance on the same data directory would pull every camera a second time; one whose
port is taken would start every camera and then die. Both now stop at once with one line.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from camgate.errors import InvalidInput

LOCK_FILE = "camgate.lock"


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on the data directory for the life of the process (the returned
    file must stay open). The kernel drops it when the process dies, even on SIGKILL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    handle = path.open("a+", encoding="ascii")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "unknown"
        handle.close()
        raise InvalidInput(
            f"another camgate (pid {other}) already uses the data directory {data_dir}: stop it "
            "or give this one its own CAMGATE_DATA_DIR"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def bind_listener(host: str, port: int) -> socket.socket:
    """The listening socket, bound now so a taken port fails before any stream starts."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as error:
        raise InvalidInput(
            f"cannot listen on {host}:{port}: {error.strerror or error} (CAMGATE_HOST/CAMGATE_PORT)"
        ) from None
    sock.set_inheritable(False)
    return sock
