"""`provisor serve --workers 2` (provisor/workers.py): one SO_REUSEPORT socket per worker.

These tests look at the worker processes from outside, through /proc (Linux, like the feature).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.live.server import free_port, listeners, live_server
from tests.scim_client import wait_for

PROVISOR = Path(sys.executable).with_name("provisor")


def workers_of(parent: int) -> list[int]:
    """The uvicorn workers of `parent` (not multiprocessing's resource tracker). A process may be
    reaped between the reads of its two files (the worker the test just killed): it is gone."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                    continue
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.append(int(entry.name))
    return sorted(found)


def socket_count(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


#: Seconds for workers to start, die and be replaced.
WORKER_TIMEOUT = 20.0


def test_connections_are_spread_over_both_workers(database_url: str, tenant_id: str) -> None:
    with live_server(database_url, tenant_id, workers=2) as server:
        port = int(server.base_url.removesuffix("/scim/v2").rsplit(":", 1)[1])
        wait_for(lambda: len(workers_of(server.process.pid)) == 2 and listeners(port) == 2, WORKER_TIMEOUT)
        workers = workers_of(server.process.pid)
        before = {pid: socket_count(pid) for pid in workers}
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        try:
            for client in clients:  # /healthz opens no database connection: only client sockets count
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
            gained = {pid: socket_count(pid) - before[pid] for pid in workers}
            assert sum(gained.values()) >= 16 and all(n > 0 for n in gained.values()), gained
        finally:
            for client in clients:
                client.close()


def test_a_dead_worker_is_replaced_and_sigterm_stops_everything(database_url: str, tenant_id: str) -> None:
    with live_server(database_url, tenant_id, workers=2) as server:
        port = int(server.base_url.removesuffix("/scim/v2").rsplit(":", 1)[1])
        # Both must listen before one is killed: the server is ready once the first worker answers,
        # and killing that one while the other still starts would leave nobody on the port.
        wait_for(lambda: len(workers_of(server.process.pid)) == 2 and listeners(port) == 2, WORKER_TIMEOUT)
        victim = workers_of(server.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: (
                victim not in workers_of(server.process.pid)
                and len(workers_of(server.process.pid)) == 2
                and listeners(port) == 2
            ),
            WORKER_TIMEOUT,
        )
        for _ in range(8):  # the kernel spreads these over both sockets: the survivor and the new worker
            assert httpx.get(f"{server.base_url}/Users", headers=server.headers).status_code == 200
        workers = workers_of(server.process.pid)
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def test_workers_do_not_outlive_a_killed_supervisor(database_url: str, tenant_id: str) -> None:
    """kill -9 of the supervising process (the OOM killer, an operator) takes its workers with it.
    Left running, they kept serving on the port with SO_REUSEPORT beside the next server started
    there, with the old code and configuration, and nobody to restart or stop them."""
    with live_server(database_url, tenant_id, workers=2) as server:
        port = int(server.base_url.removesuffix("/scim/v2").rsplit(":", 1)[1])
        workers = workers_of(server.process.pid)
        assert len(workers) == 2, workers
        server.process.kill()
        server.process.wait(10)
        wait_for(lambda: not [pid for pid in workers if Path(f"/proc/{pid}").exists()], WORKER_TIMEOUT)
        assert listeners(port) == 0


def test_a_taken_port_fails_fast(database_url: str) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that allows sharing
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(
            [str(PROVISOR), "serve", "--workers", "2", "--port", str(port), "--database-url", database_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-500:]
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr, done.stderr[-500:]


@pytest.fixture(autouse=True)
def _linux_only() -> None:
    assert Path("/proc/self/stat").exists(), "these tests read /proc"
