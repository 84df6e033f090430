"""Free TCP ports on 127.0.0.1 for tests that start servers.

The kernel picks a free port (bind to port 0); a `PortAllocator` also remembers what it handed
out, so two servers in one test session never get the same port even if the first has not bound
it yet. When the suite runs in several worker processes, each worker only takes its own share of
the ports (by half the port number modulo the worker count: Linux hands out even ports for
`bind(0)`), so two workers never race for one port.
It never binds anything beyond the probe socket it closes at once. `free_udp_range` finds a run
of free UDP ports the same way, for servers given a port range.
"""

from __future__ import annotations

import os
import socket
import threading
import time

LOOPBACK = "127.0.0.1"
_POLL_S = 0.05
_MAX_ATTEMPTS = 200


class PortAllocator:
    """Hands out kernel-chosen free ports, each at most once."""

    def __init__(self, share: tuple[int, int] = (0, 1)) -> None:
        self._handed_out: set[int] = set()
        self._lock = threading.Lock()
        self._index, self._count = share

    def allocate(self) -> int:
        with self._lock:
            for _ in range(_MAX_ATTEMPTS * self._count):
                port = _kernel_free_port()
                if (port // 2) % self._count == self._index and port not in self._handed_out:
                    self._handed_out.add(port)
                    return port
        raise RuntimeError(f"no unused free port after {_MAX_ATTEMPTS} attempts")


def _worker_share() -> tuple[int, int]:
    """(index, count) of this test worker process; (0, 1) when the suite runs in one process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return 0, 1
    return int(worker[2:]) % count, count


_session_allocator = PortAllocator(_worker_share())


def free_port() -> int:
    """A free port on 127.0.0.1 not handed out before in this process."""
    return _session_allocator.allocate()


def is_bindable(port: int) -> bool:
    """Whether a server could listen on the port now (SO_REUSEADDR, as GLib's listener uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def wait_until_bindable(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not is_bindable(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {port} still in use after {timeout_s} s")
        time.sleep(_POLL_S)


def _kernel_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


# Above the usual reserved ports and below Linux's ephemeral range (32768-60999), where the kernel
# picks ports for everything else, so a range found free stays free.
_UDP_RANGE_SPAN = (20000, 32000)
_handed_out_udp: set[int] = set()


def free_udp_range(count: int) -> tuple[int, int]:
    """``count`` consecutive UDP ports free on every address, not handed out before here, and
    in this worker's share of the port space (see `PortAllocator`)."""
    index, workers = _worker_share()
    low_end, high_end = _UDP_RANGE_SPAN
    slice_size = (high_end - low_end) // workers
    start = low_end + index * slice_size
    for low in range(start, start + slice_size - count, count):
        ports = range(low, low + count)
        if not _handed_out_udp.intersection(ports) and all(map(_udp_bindable, ports)):
            _handed_out_udp.update(ports)
            return low, low + count - 1
    raise RuntimeError(f"no {count} free consecutive UDP ports")


def _udp_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True
