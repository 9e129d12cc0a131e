"""A PostgreSQL server of the test's own, to stop, kill and restart (never the machine's shared one).

`initdb` refuses to run as root, so the cluster belongs to an unprivileged user (`postgres` when
the machine has one, else `nobody`) and lives in a temporary directory that user owns. The server
listens on 127.0.0.1 only, on a free port, with trust authentication for that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.server import free_port


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


def _run_as() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


class PgInstance:
    """One PostgreSQL cluster: `start`, `stop(mode)` (smart | fast | immediate), `kill9`."""

    def __init__(self, root: Path) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = bin_dir
        self.user = _run_as()
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        entry = pwd.getpwnam(self.user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        self._as_user(["initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "--no-sync"])
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{root}'\n"
                "fsync = off\nmax_connections = 200\nshared_buffers = 32MB\n"
            )

    @property
    def admin_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _as_user(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [os.path.join(self.bin, argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, timeout=60)

    def start(self) -> None:
        self._as_user(
            ["pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "30", "start"]
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_user(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"], check=False)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def kill9(self) -> None:
        """SIGKILL the postmaster; its backends notice and exit (waited for here, since a new
        postmaster refuses to start while they hold the old shared memory); `start` then recovers."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True).stdout.split()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        for child in [pid, *(int(c) for c in children)]:
            while time.monotonic() < deadline and _alive(child):
                time.sleep(0.05)

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = self._as_user(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-d", database, "-Atc", sql])
        return out.stdout.decode().strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True  # a zombie too: a new postmaster refuses to start until the old one is reaped


@pytest.fixture(scope="module")
def pg_instance() -> Iterator[PgInstance]:
    if _bin_dir() is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="provisor-pg-"))
    instance = PgInstance(root)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop("immediate")
        pid = instance.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
