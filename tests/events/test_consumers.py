"""Named consumers and the deprovisioning contract, over HTTP, on both databases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import delete, select
from starlette.testclient import TestClient

from provisor.storage.consumers import commit_position, delete_consumer
from provisor.storage.event_log import prune_events
from provisor.storage.tables import consumers, events
from provisor.storage.transactions import write_transaction
from tests.events.support import bearer, client, head, mint
from tests.events.test_prune import CUTOFF, insert_event
from tests.scim_client import run_db

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _user(c: TestClient, h: dict[str, str], name: str) -> str:
    response = c.post("/scim/v2/Users", json={"schemas": [USER], "userName": name}, headers=h)
    assert response.status_code == 201, response.text
    uid: str = response.json()["id"]
    return uid


def _deactivate(c: TestClient, h: dict[str, str], uid: str) -> None:
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert c.patch(f"/scim/v2/Users/{uid}", json=body, headers=h).status_code == 200


def _commit(c: TestClient, admin: str, name: str, body: Any, **params: Any) -> Any:
    return c.put(f"/admin/v1/consumers/{name}", json=body, params=params, headers=bearer(admin))


def test_positions_move_forward_only_and_resume_the_feed(database_url: str, tenant_id: str) -> None:
    scim, admin = mint(database_url, tenant_id), mint(database_url, None, "admin")
    name = f"crm-{tenant_id}"
    with client(database_url) as c:
        h = bearer(scim)
        start = head(database_url)
        created = _commit(c, admin, name, {"seq": start, "tenant": tenant_id})
        assert created.status_code == 200, created.text
        assert created.json()["seq"] == start and created.json()["tenant"] == tenant_id
        ids = [_user(c, h, f"u{i}@{tenant_id}") for i in range(3)]
        page = c.get("/admin/v1/events", params={"consumer": name, "limit": 2}, headers=bearer(admin)).json()
        assert [e["resourceId"] for e in page["events"]] == ids[:2]
        assert _commit(c, admin, name, {"seq": page["next"]}).json()["seq"] == page["next"]
        rest = c.get("/admin/v1/events", params={"consumer": name}, headers=bearer(admin)).json()
        assert [e["resourceId"] for e in rest["events"]] == ids[2:]

        behind = _commit(c, admin, name, {"seq": start})
        assert behind.status_code == 409
        shown = c.get(f"/admin/v1/consumers/{name}", headers=bearer(admin)).json()
        assert shown["seq"] == page["next"]  # the refused commit wrote nothing
        assert _commit(c, admin, name, {"seq": start}, force="true").json()["seq"] == start
        beyond = _commit(c, admin, name, {"seq": head(database_url) + 1})
        assert beyond.status_code == 400
        for bad in ({"seq": "5"}, {"seq": True}, [], {"nope": 1}):
            assert _commit(c, admin, name, bad).status_code == 400
        assert _commit(c, admin, name, {"seq": start, "tenant": "other"}).status_code == 409
        assert c.get(f"/admin/v1/consumers/{name}", headers=bearer(admin)).json()["seq"] == start

        listed = c.get("/admin/v1/consumers", headers=bearer(admin)).json()["consumers"]
        assert any(x["name"] == name for x in listed)
        assert c.put(f"/admin/v1/consumers/{name}", json={"seq": 0}, headers=bearer(scim)).status_code == 401
        assert c.delete(f"/admin/v1/consumers/{name}", headers=bearer(admin)).status_code == 204
        assert c.get(f"/admin/v1/consumers/{name}", headers=bearer(admin)).status_code == 404
        gone = c.get("/admin/v1/events", params={"consumer": name}, headers=bearer(admin))
        assert gone.status_code == 404


def test_deprovisioning_is_acknowledged_by_each_consumer_commit(database_url: str, tenant_id: str) -> None:
    scim, admin = mint(database_url, tenant_id), mint(database_url, None, "admin")
    a, b = f"a-{tenant_id}", f"b-{tenant_id}"
    with client(database_url) as c:
        h = bearer(scim)
        start = head(database_url)
        for name in (a, b):
            assert _commit(c, admin, name, {"seq": start, "tenant": tenant_id}).status_code == 200
        kept, gone = _user(c, h, f"kept@{tenant_id}"), _user(c, h, f"gone@{tenant_id}")
        _deactivate(c, h, kept)
        assert c.delete(f"/scim/v2/Users/{gone}", headers=h).status_code == 204
        _user(c, h, f"other@{tenant_id}")  # not deprovisioning
        # A threshold of 1 s: both events become overdue for both consumers.
        _set_threshold(database_url, tenant_id, 1)
        time.sleep(1.2)
        params = {"tenant": tenant_id, "unacknowledged": "true"}
        overdue = c.get("/admin/v1/deprovisioning", params=params, headers=bearer(admin)).json()
        assert [(e["resourceId"], e["op"]) for e in overdue["events"]] == [
            (kept, "deactivated"),
            (gone, "deleted"),
        ]
        assert overdue["unacknowledged"] == {"count": 2, "byConsumer": {a: 2, b: 2}}

        middle = overdue["events"][0]["seq"]
        assert _commit(c, admin, a, {"seq": head(database_url)}).status_code == 200
        assert _commit(c, admin, b, {"seq": middle}).status_code == 200
        overdue = c.get("/admin/v1/deprovisioning", params=params, headers=bearer(admin)).json()
        assert [e["resourceId"] for e in overdue["events"]] == [gone]
        assert overdue["unacknowledged"]["byConsumer"] == {a: 0, b: 1}
        assert overdue["events"][0]["acks"][a] is not None and overdue["events"][0]["acks"][b] is None

        everything = c.get(
            "/admin/v1/deprovisioning", params={"tenant": tenant_id}, headers=bearer(admin)
        ).json()
        assert everything["total"] == 2
        revoke = everything["timeToRevoke"]
        assert revoke[a]["count"] == 2 and revoke[b]["count"] == 1
        assert revoke[a]["max"] >= revoke[a]["p50"] >= 1.0  # committed after the 1.2 s sleep
        # A forced rewind keeps the first acknowledgement: offboarding happened when it happened.
        assert _commit(c, admin, a, {"seq": start}, force="true").status_code == 200
        again = c.get("/admin/v1/deprovisioning", params=params, headers=bearer(admin)).json()
        assert again["unacknowledged"]["byConsumer"] == {a: 0, b: 1}
        missing = c.get("/admin/v1/deprovisioning", params={"tenant": "no-such"}, headers=bearer(admin))
        assert missing.status_code == 404
        for name in (a, b):
            assert c.delete(f"/admin/v1/consumers/{name}", headers=bearer(admin)).status_code == 204


def _set_threshold(url: str, tenant: str, seconds: int) -> None:
    from provisor.storage.auth_cache import auth_write
    from provisor.storage.tenants import update_settings

    async def work(engine: Any) -> None:
        async with auth_write(engine) as conn:  # as `provisor tenant set` does: every worker follows
            await update_settings(conn, tenant, {"deprovision_ack_threshold_seconds": seconds})

    run_db(url, work)


@pytest.fixture(autouse=True)
def _drop_consumers(tenant_id: str, request: pytest.FixtureRequest) -> Iterator[None]:
    """Consumers hold back pruning in the shared database: never leave one behind, even on failure."""
    url = request.getfixturevalue("database_url") if "database_url" in request.fixturenames else None
    yield
    if url is None:
        return

    async def work(engine: Any) -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(delete(consumers).where(consumers.c.name.like(f"%{tenant_id}")))

    run_db(url, work)


def test_prune_keeps_what_a_consumer_has_not_read(fresh_database_url: str, tenant_id: str) -> None:
    url = fresh_database_url

    async def work(engine: Any) -> tuple[int, int, int]:
        async with write_transaction(engine) as conn:
            seqs = [await insert_event(conn, tenant_id, f"r{n}") for n in range(6)]
            await commit_position(conn, "slow", seqs[2], tenant=None, force=False)
        first = await prune_events(engine, CUTOFF)
        async with write_transaction(engine) as conn:
            left = len((await conn.execute(select(events.c.seq))).all())
            await delete_consumer(conn, "slow")
        second = await prune_events(engine, CUTOFF)
        return first, left, second

    first, left, second = run_db(url, work)
    assert (first, left, second) == (3, 3, 2)  # seqs 1-3 go; 4-6 wait; then all but the newest


def test_snapshot_streams_the_tenant_as_ndjson(database_url: str, tenant_id: str) -> None:
    scim, admin = mint(database_url, tenant_id), mint(database_url, None, "admin")
    with client(database_url) as c:
        h = bearer(scim)
        ids = sorted(_user(c, h, f"s{i}@{tenant_id}") for i in range(3))
        group = {"schemas": [GROUP], "displayName": "eng", "members": [{"value": ids[0]}, {"value": ids[2]}]}
        gid = c.post("/scim/v2/Groups", json=group, headers=h).json()["id"]
        response = c.get("/admin/v1/snapshot", params={"tenant": tenant_id}, headers=bearer(admin))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(line) for line in response.text.splitlines()]
        assert lines[0] == {"seq": head(database_url)}
        assert [d["id"] for d in lines[1:4]] == ids and all("groups" not in d for d in lines[1:4])
        got = c.get(f"/scim/v2/Users/{ids[0]}", headers=h).json()
        assert {k: v for k, v in got.items() if k != "groups"} == lines[1]
        assert lines[4]["id"] == gid and sorted(m["value"] for m in lines[4]["members"]) == [ids[0], ids[2]]
        assert len(lines) == 5
        assert c.get("/admin/v1/snapshot", headers=bearer(admin)).status_code == 400
        assert (
            c.get("/admin/v1/snapshot", params={"tenant": "nope"}, headers=bearer(admin)).status_code == 404
        )
        assert c.get("/admin/v1/snapshot", params={"tenant": tenant_id}, headers=h).status_code == 401


def test_bad_requests_are_refused_and_write_nothing(database_url: str, tenant_id: str) -> None:
    admin = mint(database_url, None, "admin")
    name = f"bad-{tenant_id}"
    with client(database_url) as c:
        h = bearer(admin)
        assert c.put("/admin/v1/consumers/-dash-first", json={"seq": 0}, headers=h).status_code == 400
        assert c.put(f"/admin/v1/consumers/{'x' * 201}", json={"seq": 0}, headers=h).status_code == 400
        raw = c.put(f"/admin/v1/consumers/{name}", content=b"{not json", headers=h)
        assert raw.status_code == 400 and raw.json()["status"] == "400"
        assert c.put(f"/admin/v1/consumers/{name}", json={"seq": -1}, headers=h).status_code == 400
        assert c.get(f"/admin/v1/consumers/{name}", headers=h).status_code == 404  # nothing was created
        assert (
            c.put(
                f"/admin/v1/consumers/{name}", json={"seq": 0}, params={"force": "maybe"}, headers=h
            ).status_code
            == 400
        )
        assert c.get(f"/admin/v1/consumers/{name}", headers=h).status_code == 404
        for params in ({"tenant": tenant_id, "window": "x"}, {"tenant": tenant_id, "limit": "0"}, {}):
            assert c.get("/admin/v1/deprovisioning", params=params, headers=h).status_code == 400
        both = c.get("/admin/v1/events", params={"consumer": name, "after": 1}, headers=h)
        assert both.status_code == 400


def test_concurrent_first_commits_create_one_consumer(database_url: str, tenant_id: str) -> None:
    name = f"race-{tenant_id}"
    target = head(database_url)

    async def work(engine: Any) -> list[int]:
        async def one() -> int:
            async with write_transaction(engine) as conn:
                return (await commit_position(conn, name, target, tenant=None, force=False)).seq

        return list(await asyncio.gather(*(one() for _ in range(8))))

    assert run_db(database_url, work) == [target] * 8
