"""PostgreSQL goes away (fast shutdown, immediate shutdown, kill -9 of the postmaster) and comes
back, under a running `provisor serve` with two workers.

While it is away every request is answered promptly with a SCIM 503 and `Retry-After` (not a 500),
`/readyz` says 503, and nothing is half-written; once it is back the same processes serve again
within seconds, and every write they acknowledged is stored with its event.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import _own_postgres_database
from tests.faults.observe import stored
from tests.faults.pg_instance import PgInstance
from tests.live.server import listeners, live_server
from tests.live.test_workers import workers_of
from tests.scim_client import wait_for

TIMEOUT = 3.0
SLACK = 1.5
RECOVERY = 10.0  # seconds within which the server must serve again once PostgreSQL is back


def _user(name: str) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}


def _title(value: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": value}],
    }


class Load:
    """Threads that keep reading and creating users through the whole outage; they record every
    answer so that the test can check each status and each acknowledged (or refused) create."""

    def __init__(self, client: httpx.Client, read_id: str, threads: int = 4) -> None:
        self.client = client
        self.read_id = read_id
        self.stop = threading.Event()
        self.statuses: list[tuple[int, bool]] = []  # (status, has Retry-After)
        self.created: list[str] = []
        self.refused: list[str] = []
        self._names = itertools.count()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, which: int) -> None:
        while not self.stop.is_set():
            if which % 2:
                name = f"load-{next(self._names)}"
                answer = self.client.post("/Users", json=_user(name))
                (self.created if answer.status_code == 201 else self.refused).append(name)
            else:
                answer = self.client.get(f"/Users/{self.read_id}")
            self.statuses.append((answer.status_code, bool(answer.headers.get("retry-after"))))
            if answer.status_code == 503:
                time.sleep(0.05)


def _serves_again(client: httpx.Client, path: str, in_a_row: int) -> None:
    """Once PostgreSQL is back: `in_a_row` GETs of `path` in a row answer 200 within `RECOVERY`
    seconds (enough of them that each worker has answered)."""
    back_at = time.monotonic()
    while True:
        answers = [client.get(path).status_code for _ in range(in_a_row)]
        if answers == [200] * in_a_row:
            return
        assert time.monotonic() - back_at < RECOVERY, answers
        time.sleep(0.2)


def _stop(instance: PgInstance, mode: str) -> None:
    if mode == "kill9":
        instance.kill9()
    else:
        instance.stop(mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate", "kill9"])
def test_postgresql_down_then_back(pg_instance: PgInstance, mode: str) -> None:
    if pg_instance.postmaster_pid() is None:
        pg_instance.start()
    tenant = f"t-down-{mode}"
    env = {"PROVISOR_REQUEST_TIMEOUT": str(TIMEOUT)}
    with (
        _own_postgres_database(pg_instance.admin_url, "down") as url,
        live_server(url, tenant, workers=2, env=env) as server,
    ):
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        base = server.base_url.rsplit("/scim/v2", 1)[0]
        acknowledged: dict[str, int] = {}  # userName -> version the server acknowledged
        ids: dict[str, str] = {}
        for i in range(6):  # warm every worker's kept and pooled connections
            created = client.post("/Users", json=_user(f"before-{i}"))
            assert created.status_code == 201, created.text
            ids[f"before-{i}"] = created.json()["id"]
            acknowledged[f"before-{i}"] = 1
            assert client.get(f"/Users/{ids[f'before-{i}']}").status_code == 200

        load = Load(
            httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30), ids["before-4"]
        )
        load.__enter__()
        time.sleep(0.5)
        _stop(pg_instance, mode)
        failed_writes: list[str] = []
        for i in range(4):
            for method, path, body in (
                ("GET", f"/Users/{ids['before-0']}", None),
                ("GET", '/Users?filter=userName eq "before-1"', None),
                ("POST", "/Users", _user(f"during-{i}")),
                ("PATCH", f"/Users/{ids['before-2']}", _title(f"during-{i}")),
            ):
                began = time.monotonic()
                answer = client.request(method, path, json=body)
                elapsed = time.monotonic() - began
                assert answer.status_code == 503, (method, path, answer.status_code, answer.text)
                assert answer.headers.get("retry-after"), answer.headers
                assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
                assert elapsed < TIMEOUT + SLACK, (method, elapsed)
                if method != "GET":
                    failed_writes.append(f"during-{i}")
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 503
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200

        pg_instance.start()
        _serves_again(client, f"/Users/{ids['before-0']}", 8)  # every worker
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        time.sleep(0.5)
        load.__exit__()
        assert load.created and load.refused, (len(load.created), len(load.refused))
        assert {status for status, _ in load.statuses} <= {200, 201, 503}, load.statuses
        assert all(retry for status, retry in load.statuses if status == 503)
        for i in range(8):
            created = client.post("/Users", json=_user(f"after-{i}"))
            assert created.status_code == 201, created.text
            acknowledged[f"after-{i}"] = 1
            patched = client.patch(f"/Users/{ids['before-3']}", json=_title(f"after-{i}"))
            assert patched.status_code == 200, patched.text
        acknowledged["before-3"] = 1 + 8

        data = stored(url, tenant)
        for name, version in acknowledged.items():
            rid, stored_version, _ = data.users[name]
            assert stored_version == version, name
            assert [v for _, v in data.events_of(rid)] == list(range(1, version + 1)), name
        assert data.users["before-3"][2]["title"] == "after-7"
        for name in load.created:
            rid = data.users[name][0]
            assert data.events_of(rid) == [("created", 1)], name
        for name in [*failed_writes, *load.refused]:  # answered 503: nothing of them
            assert name not in data.users
        assert data.users["before-2"][1] == 1 and "title" not in data.users["before-2"][2]

        server.process.terminate()
        server.process.wait(15)
        log = server.log()
        bad = [
            line
            for line in log.splitlines()
            if "internal server error" in line.lower() or "unhandled error" in line or "Traceback" in line
        ]
        assert not bad, "\n".join(bad)


@pytest.mark.slow
def test_a_worker_started_while_postgresql_is_down_waits_for_it(pg_instance: PgInstance) -> None:
    """A worker that dies during an outage is replaced at once, and the replacement starts while
    PostgreSQL is still away. It says so in one line and waits for the database (its socket does
    not listen until it has started, so the other worker keeps answering 503s meanwhile), and one
    more when it is back; it does not fail its start-up with a traceback, exit, and be restarted
    four times a second."""
    if pg_instance.postmaster_pid() is None:
        pg_instance.start()
    env = {"PROVISOR_REQUEST_TIMEOUT": str(TIMEOUT)}
    with (
        _own_postgres_database(pg_instance.admin_url, "respawn") as url,
        live_server(url, "t-respawn", workers=2, env=env) as server,
    ):
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        read_id = client.post("/Users", json=_user("before")).json()["id"]
        port = int(server.base_url.split(":")[2].split("/")[0])
        workers = workers_of(server.process.pid)
        assert len(workers) == 2, workers
        pg_instance.stop("fast")
        os.kill(workers[0], signal.SIGKILL)
        waiting = "worker start (waiting for the database before serving)"
        wait_for(lambda: f"{waiting}: the database is unavailable" in server.log(), timeout=30)
        assert listeners(port) == 1  # the replacement waits before it listens: the other answers
        answer = client.get(f"/Users/{read_id}")
        assert answer.status_code == 503, answer.text
        pg_instance.start()
        # The replacement retries at most every START_RETRY_MAX_SECONDS; until it listens the other
        # worker answers every request, so answers alone do not show that it is back.
        wait_for(lambda: f"{waiting}: the database is back" in server.log(), timeout=RECOVERY)
        wait_for(lambda: listeners(port) == 2, timeout=RECOVERY)
        _serves_again(client, f"/Users/{read_id}", 16)  # both workers
        assert len(workers_of(server.process.pid)) == 2
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("exited with") == 1, log[-3000:]  # one replacement, not a restart loop
    assert log.count(f"{waiting}: the database is unavailable") == 1, log[-3000:]
    assert log.count(f"{waiting}: the database is back") == 1, log[-3000:]


@pytest.mark.slow
def test_sigterm_stops_a_worker_that_waits_for_postgresql(pg_instance: PgInstance) -> None:
    """A worker still waiting for the database has nothing in flight: SIGTERM ends it at once,
    instead of after the supervisor's grace period (30 s)."""
    if pg_instance.postmaster_pid() is None:
        pg_instance.start()
    with (
        _own_postgres_database(pg_instance.admin_url, "sigterm") as url,
        live_server(url, "t-sigterm", workers=2) as server,
    ):
        workers = workers_of(server.process.pid)
        pg_instance.stop("fast")
        try:
            os.kill(workers[0], signal.SIGKILL)
            waiting = "worker start (waiting for the database before serving): the database is unavailable"
            wait_for(lambda: waiting in server.log(), timeout=30)
            began = time.monotonic()
            server.process.terminate()
            assert server.process.wait(timeout=20) == 0
            assert time.monotonic() - began < 10
        finally:
            pg_instance.start()
    assert "Traceback" not in server.log(), server.log()[-3000:]
