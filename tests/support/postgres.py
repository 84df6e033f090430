"""A real, throw-away PostgreSQL server for tests: Debian's binaries, a temp directory, its own
port, and its unix socket in that directory. Always stopped and deleted, even on failure.

PostgreSQL refuses to run as root: when the tests do, the server runs as the `postgres` user and
the temp directory belongs to it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port

DEBIAN_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT_S = 30


def find_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian keeps one per major version)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(
        (p for p in DEBIAN_ROOT.glob("*/bin") if re.fullmatch(r"\d+", p.parent.name)),
        key=lambda p: int(p.parent.name),
    )
    if not versions:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return versions[-1]


class PostgresServer:
    """`with PostgresServer() as pg:` gives `pg.url`; `pg.restart()` restarts it in place."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="camgate-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.as_user: list[str] = []
        if os.getuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql://camgate@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        argv = [*self.as_user, str(self.bindir / tool), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stderr.strip()}\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> PostgresServer:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "camgate", "-A", "trust", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log_path),
            "-w", "-t", str(START_TIMEOUT_S), "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop (dropping every connection) and start again on the same port and data."""
        self.stop("fast")
        self.start()

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
