"""A real PgBouncer (Debian's `pgbouncer` package) in transaction mode, for the scale-out tests.

It runs as the `postgres` user (PgBouncer refuses to run as root) from a temporary directory, in
front of the PostgreSQL the test suite uses, with a small server pool so that many client
connections share few server connections: consecutive transactions of one client then land on
different server connections, which is what breaks session state and named prepared statements.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

PGBOUNCER = "/usr/sbin/pgbouncer"


def ensure_pgbouncer() -> str:
    """The pgbouncer binary, installed with apt-get when missing (as root); fails loudly otherwise."""
    if os.path.exists(PGBOUNCER):
        return PGBOUNCER
    if os.geteuid() != 0:
        raise RuntimeError("pgbouncer is not installed; run as root: apt-get install -y pgbouncer")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", "pgbouncer"], env=env, capture_output=True, text=True)
    if done.returncode != 0 or not os.path.exists(PGBOUNCER):
        raise RuntimeError(f"apt-get install -y pgbouncer failed: {done.stderr[-1000:]}")
    # The package starts a system-wide instance on port 6432; this test runs its own.
    subprocess.run(["systemctl", "stop", "pgbouncer"], capture_output=True)
    return PGBOUNCER


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(host: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {host}:{port}")


@contextmanager
def pgbouncer(
    server_url: str, *, listen: str = "127.0.0.1", pool_size: int = 4, ignore: str = ""
) -> Iterator[str]:
    """Run PgBouncer in transaction mode for `server_url`'s server; yield the same database's URL
    through it, with `?pgbouncer=true`. `ignore`: its `ignore_startup_parameters`."""
    binary = ensure_pgbouncer()
    server = make_url(server_url)
    user = server.username or "postgres"
    work = Path(tempfile.mkdtemp(prefix="provisor-pgbouncer-"))
    work.chmod(0o755)
    port = _free_port(listen)
    (work / "userlist.txt").write_text(f'"{user}" ""\n')
    log = work / "pgbouncer.log"
    (work / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host or '127.0.0.1'} port={server.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = {listen}\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {work / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "max_client_conn = 1000\n"
        f"logfile = {log}\n"
        f"pidfile = {work / 'pgbouncer.pid'}\n"
        f"ignore_startup_parameters = {ignore}\n"
    )
    shutil.chown(work, "postgres")
    for name in ("pgbouncer.ini", "userlist.txt"):
        shutil.chown(work / name, "postgres")
    command = [binary, "-u", "postgres", str(work / "pgbouncer.ini")]
    # Its log goes to `logfile`; a pipe nobody read would block it once full.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(listen, port, process, log)
        via = server.set(host=listen, port=port).update_query_dict({"pgbouncer": "true"})
        yield via.render_as_string(hide_password=False)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)
