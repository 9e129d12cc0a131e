"""The server's own processes fail: kill -9 of a worker and of the whole server under 8 writers,
and SIGTERM with requests in flight.

After a kill every acknowledged (2xx) write is stored with its content, its version and its
event, and SQLite's `PRAGMA integrity_check` is ok. After SIGTERM the requests accepted before the
signal complete, and the server exits 0 (a worker gets `workers.GRACE_SECONDS` to finish them).
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.faults.locks import write_lock_held
from tests.faults.observe import integrity_ok, stored
from tests.live.server import live_server

WRITERS = 8


def _user(name: str) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}


def _title(value: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": value}],
    }


def _version(body: dict[str, Any]) -> int:
    return int(re.sub(r"\D", "", body["meta"]["version"]))


class Writers:
    """`WRITERS` threads, each creating users and patching one user of its own, recording what
    the server acknowledged (connection errors and 5xx are simply not acknowledged)."""

    def __init__(self, base_url: str, headers: dict[str, str], own: list[str]) -> None:
        self.base_url = base_url
        self.headers = headers
        self.own = own
        self.stop = threading.Event()
        self.created: dict[str, str] = {}  # userName -> id
        self.patched: dict[str, tuple[int, str]] = {}  # id -> (version, title) last acknowledged
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(WRITERS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, which: int) -> None:
        client = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=10)
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                if n % 2:
                    name = f"w{which}-{n}"
                    answer = client.post("/Users", json=_user(name))
                    if answer.status_code == 201:
                        self.created[name] = answer.json()["id"]
                else:
                    rid, title = self.own[which], f"w{which}-{n}"
                    answer = client.patch(f"/Users/{rid}", json=_title(title))
                    if answer.status_code == 200:
                        self.patched[rid] = (_version(answer.json()), title)
            except httpx.HTTPError:
                time.sleep(0.05)  # the worker died under this connection: not acknowledged


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True).stdout.split()
    return [int(p) for p in out]


def _check_acknowledged(url: str, tenant: str, writers: Writers) -> None:
    data = stored(url, tenant)
    by_id = {rid: (name, version, doc) for name, (rid, version, doc) in data.users.items()}
    for name, rid in writers.created.items():
        assert data.users[name][0] == rid
        assert data.events_of(rid)[0] == ("created", 1)
    for rid, (version, title) in writers.patched.items():
        _, stored_version, doc = by_id[rid]
        # A PATCH in flight when the process died may have committed without its answer arriving.
        assert stored_version >= version
        if stored_version == version:
            assert doc["title"] == title
        assert [v for _, v in data.events_of(rid)] == list(range(1, stored_version + 1))
    assert integrity_ok(url)


@pytest.mark.slow
def test_kill9_of_a_worker_and_of_the_server_loses_no_acknowledged_write(
    fault_url: str, fault_tenant: str
) -> None:
    with live_server(fault_url, fault_tenant, workers=2) as server:
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=10)
        own = [client.post("/Users", json=_user(f"own-{i}")).json()["id"] for i in range(WRITERS)]
        writers = Writers(server.base_url, server.headers, own)
        writers.start()
        time.sleep(1.5)
        workers = _children(server.process.pid)
        assert workers
        subprocess.run(["kill", "-9", str(workers[0])], check=True)
        time.sleep(1.5)
        for pid in [*_children(server.process.pid), server.process.pid]:
            subprocess.run(["kill", "-9", str(pid)], check=False)
        server.process.wait(10)
        time.sleep(0.3)
        writers.join()
        assert len(writers.created) > 5 and len(writers.patched) > 2, (
            len(writers.created),
            len(writers.patched),
        )
    _check_acknowledged(fault_url, fault_tenant, writers)
    # A new server on the same database serves at once.
    with live_server(fault_url, fault_tenant) as again:
        answer = httpx.post(
            f"{again.base_url}/Users", headers=again.headers, json=_user("after-kill"), timeout=10
        )
        assert answer.status_code == 201, answer.text


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_completes_the_requests_in_flight(fault_url: str, fault_tenant: str, workers: int) -> None:
    env = {"PROVISOR_REQUEST_TIMEOUT": "10"}
    with live_server(fault_url, fault_tenant, workers=workers, env=env) as server:
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        assert client.post("/Users", json=_user("warm")).status_code == 201
        with ThreadPoolExecutor(WRITERS) as pool:
            with write_lock_held(fault_url):  # keeps the creates in flight while the signal arrives
                futures = {
                    f"inflight-{i}": pool.submit(client.post, "/Users", json=_user(f"inflight-{i}"))
                    for i in range(WRITERS)
                }
                time.sleep(1.0)
                server.process.send_signal(signal.SIGTERM)
                time.sleep(1.0)
            answers = {name: future.result() for name, future in futures.items()}
        assert server.process.wait(20) == 0
    for name, answer in answers.items():
        assert answer.status_code == 201, (name, answer.status_code, answer.text)
    data = stored(fault_url, fault_tenant)
    for name, answer in answers.items():
        rid = answer.json()["id"]
        assert data.users[name][0] == rid
        assert data.events_of(rid) == [("created", 1)]
