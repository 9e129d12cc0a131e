"""SQLite under a burst of creates on `provisor serve --workers 2`: the WAL stays near its bound
while both workers checkpoint in the background (storage/sqlite/checkpoint.py), and killing every
process with SIGKILL in the middle of it loses no create that was answered 201.

SQLite-only by nature (the WAL is SQLite's). The WAL header's checkpoint sequence number counts
the times the WAL started over (tests/db/test_sqlite_checkpoints.py).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from provisor.storage.migrate import upgrade
from provisor.storage.sqlite.engine import WAL_MARK_PAGES
from tests.db.test_sqlite_checkpoints import FRAME, size, wal_restarts
from tests.live.server import live_server
from tests.live.test_workers import WORKER_TIMEOUT, workers_of
from tests.scim_client import run_db, wait_for

CLIENTS = 8
#: Creates answered 201 before the kill: enough to take the WAL past its bound a few times.
BEFORE_KILL = 3_000


@pytest.mark.slow
def test_a_burst_keeps_the_wal_bounded_and_a_kill_loses_no_answered_create(tmp_path: Path) -> None:
    path = tmp_path / "burst.db"
    url = f"sqlite:///{path}"
    wal = path.with_name(path.name + "-wal")
    run_db(url, upgrade)
    created: list[str] = []
    done = threading.Event()
    largest = 0
    with live_server(url, "t-wal", workers=2) as server:
        wait_for(lambda: len(workers_of(server.process.pid)) == 2, WORKER_TIMEOUT)
        restarts = wal_restarts(path)

        def create(client_no: int) -> None:
            nonlocal largest
            with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as client:
                n = 0
                while not done.is_set():
                    name = f"burst-{client_no}-{n}@example.com"
                    n += 1
                    try:
                        answer = client.post("/Users", json={"userName": name, "displayName": name * 4})
                    except httpx.HTTPError:
                        return  # the server was killed: this one's outcome is unknown
                    if answer.status_code == 201:
                        created.append(name)
                    largest = max(largest, size(wal))

        def kill_when_enough() -> None:
            try:
                wait_for(lambda: len(created) >= BEFORE_KILL, 120)
                for pid in [*workers_of(server.process.pid), server.process.pid]:
                    os.kill(pid, signal.SIGKILL)
            finally:
                done.set()

        with ThreadPoolExecutor(CLIENTS + 1) as pool:
            killer = pool.submit(kill_when_enough)
            for future in [pool.submit(create, k) for k in range(CLIENTS)]:
                future.result()
            killer.result()
    assert wal_restarts(path) > restarts  # the burst took the WAL past its bound
    # Near the mark; past it by the writes of the moment before a background checkpoint finishes
    # the WAL under the writers' gate (tests/db/test_sqlite_checkpoints.py).
    assert largest <= 2 * WAL_MARK_PAGES * FRAME, largest
    db = sqlite3.connect(path)  # recovers from the WAL as the next server would
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {
            row[0]
            for row in db.execute(
                "SELECT json_extract(doc, '$.userName') FROM resources WHERE tenant_id = 't-wal'"
            )
        }
    finally:
        db.close()
    assert set(created) <= stored
