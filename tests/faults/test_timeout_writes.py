"""Writes that meet a lock held past the request timeout: a request answered with an error has
written nothing, and a request answered 2xx wrote exactly its change, with its event.

A write that may still commit is never answered as failed: the deadline aborts it in the database
and waits for the outcome (provisor/budget.py). These tests hold the write lock from outside for
longer than `PROVISOR_REQUEST_TIMEOUT`, fire concurrent creates and PATCHes, release the lock,
and then read the stored users and events.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.faults.locks import pg_table_locked, sqlite_lock_only, write_lock_held
from tests.faults.observe import stored
from tests.live.server import live_server
from tests.scim_client import mint_token

TIMEOUT = 3.0
#: How much later than the timeout an answer may come (the database's abort, the event loop).
SLACK = 1.5
HELD = 5.0  # longer than the timeout
WRITERS = 8


def _user(name: str) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": True}


def _patch(title: str) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": title}],
    }


def _timed(call: Any) -> tuple[int, float, httpx.Response]:
    began = time.monotonic()
    response = call()
    return response.status_code, time.monotonic() - began, response


@pytest.mark.slow
def test_writes_answered_with_an_error_wrote_nothing(fault_url: str, fault_tenant: str) -> None:
    env = {"PROVISOR_REQUEST_TIMEOUT": str(TIMEOUT)}
    with live_server(fault_url, fault_tenant, workers=2, env=env) as server:
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        targets = {}
        for i in range(WRITERS):
            created = client.post("/Users", json=_user(f"target-{i}"))
            assert created.status_code == 201, created.text
            targets[f"target-{i}"] = created.json()["id"]
        before = stored(fault_url, fault_tenant)

        with ThreadPoolExecutor(2 * WRITERS) as pool, write_lock_held(fault_url):
            held_at = time.monotonic()
            creates = {
                f"new-{i}": pool.submit(_timed, lambda i=i: client.post("/Users", json=_user(f"new-{i}")))
                for i in range(WRITERS)
            }
            patches = {
                name: pool.submit(
                    _timed, lambda rid=rid: client.patch(f"/Users/{rid}", json=_patch("patched"))
                )
                for name, rid in targets.items()
            }
            time.sleep(max(0.0, HELD - (time.monotonic() - held_at)))
        create_results = {name: future.result() for name, future in creates.items()}
        patch_results = {name: future.result() for name, future in patches.items()}
        time.sleep(1.0)  # a write committed after its answer would show by now
        after = stored(fault_url, fault_tenant)

        for name, (status, _, response) in create_results.items():
            if status == 201:
                rid = response.json()["id"]
                assert after.users[name][0] == rid
                assert after.events_of(rid) == [("created", 1)]
            else:
                assert name not in after.users, f"{name} answered {status} but was created"
                assert not [e for e in after.events if e[0] not in {r for r, _, _ in after.users.values()}]

        for name, (status, _, _) in patch_results.items():
            rid, version, _ = before.users[name]
            _, version_after, doc_after = after.users[name]
            if status == 200:
                assert (version_after, doc_after.get("title")) == (version + 1, "patched")
                assert len(after.events_of(rid)) == len(before.events_of(rid)) + 1
            else:
                assert (version_after, doc_after.get("title")) == (version, None), f"{name} answered {status}"
                assert after.events_of(rid) == before.events_of(rid)

        statuses = [status for status, _, _ in (*create_results.values(), *patch_results.values())]
        assert any(status >= 500 for status in statuses), "the held lock should have timed requests out"
        for status, elapsed, response in (*create_results.values(), *patch_results.values()):
            assert elapsed < TIMEOUT + SLACK, (status, elapsed)
            if status >= 400:
                assert status == 503, response.text
                assert response.headers.get("retry-after"), response.headers
                assert response.json()["status"] == "503"

        # The lock is gone: the same processes write again at once.
        again = client.post("/Users", json=_user("after-the-lock"))
        assert again.status_code == 201, again.text


@pytest.mark.slow
@pytest.mark.parametrize("fault_url", ["sqlite"], indirect=True)
def test_sqlite_lock_wait_is_answered_within_the_timeout(fault_url: str, fault_tenant: str) -> None:
    """A writer outside Provisor (no writers' gate) holds SQLite's lock: the create waits for it at
    most what remains of its time, and is answered by the timeout, having written nothing."""
    env = {"PROVISOR_REQUEST_TIMEOUT": str(TIMEOUT)}
    with live_server(fault_url, fault_tenant, env=env) as server:
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        assert client.post("/Users", json=_user("warm-up")).status_code == 201
        with ThreadPoolExecutor(4) as pool, sqlite_lock_only(fault_url):
            held_at = time.monotonic()
            futures = [
                pool.submit(_timed, lambda i=i: client.post("/Users", json=_user(f"w-{i}"))) for i in range(3)
            ]
            time.sleep(HELD + 2 - (time.monotonic() - held_at))
        results = [future.result() for future in futures]
        time.sleep(0.5)
        after = stored(fault_url, fault_tenant)
        for i, (status, elapsed, response) in enumerate(results):
            assert status == 503, response.text
            assert elapsed < TIMEOUT + SLACK, elapsed
            assert f"w-{i}" not in after.users
        assert client.post("/Users", json=_user("after")).status_code == 201


@pytest.mark.slow
@pytest.mark.parametrize("fault_url", ["postgresql"], indirect=True)
def test_bookkeeping_writes_leave_the_deadline_in_force(fault_url: str, fault_tenant: str) -> None:
    """A token's first use writes its `last_used` before the request's own work: that commit is
    not the request's, so a read blocked afterwards still ends at the timeout (503), not when the
    lock goes."""
    env = {"PROVISOR_REQUEST_TIMEOUT": str(TIMEOUT)}
    with live_server(fault_url, fault_tenant, env=env) as server:
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        created = client.post("/Users", json=_user("read-me"))
        assert created.status_code == 201
        fresh = {**server.headers, "Authorization": f"Bearer {mint_token(fault_url, fault_tenant)}"}
        with pg_table_locked(fault_url, "resources", "ACCESS EXCLUSIVE"):
            began = time.monotonic()
            answer = client.get(f"/Users/{created.json()['id']}", headers=fresh)
            elapsed = time.monotonic() - began
        assert answer.status_code == 503, answer.text
        assert elapsed < TIMEOUT + SLACK, elapsed
