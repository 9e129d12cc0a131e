"""The change feed: exactly the committed changes, in order, for admin tokens only."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from starlette.testclient import TestClient

from provisor.events.hooks import HookRunner
from provisor.storage.engine import create_engine
from provisor.storage.outbox import append_event
from provisor.storage.transactions import write_transaction
from tests.events.support import bearer, client, eventually, head, mint

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def feed(c: TestClient, admin: str, **params: Any) -> dict[str, Any]:
    response = c.get("/admin/v1/events", params=params, headers=bearer(admin))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def test_operations_yield_exactly_their_events_in_order(fresh_database_url: str, tenant_id: str) -> None:
    """A database of its own: the sequence is global, and an earlier test whose transaction rolled
    back after taking the next seq leaves a gap right after `head`, which the feed rightly waits
    out for its grace period (docs/events.md) instead of answering at once."""
    database_url = fresh_database_url
    scim, admin, start = mint(database_url, tenant_id), mint(database_url, None, "admin"), head(database_url)
    with client(database_url) as c:
        h = bearer(scim)
        user = c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "ada"}, headers=h).json()
        uid = user["id"]
        dup = c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "ADA"}, headers=h)
        assert dup.status_code == 409  # a failed request records nothing
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        }
        assert c.patch(f"/scim/v2/Users/{uid}", json=patch, headers=h).status_code == 200
        group = c.post("/scim/v2/Groups", json={"schemas": [GROUP], "displayName": "eng"}, headers=h).json()
        gid = group["id"]
        add = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
        }
        assert c.patch(f"/scim/v2/Groups/{gid}", json=add, headers=h).status_code in (200, 204)
        assert c.delete(f"/scim/v2/Users/{uid}", headers=h).status_code == 204

        body = feed(c, admin, after=start, tenant=tenant_id)
        got = [(e["resourceType"], e["resourceId"], e["op"]) for e in body["events"]]
        assert got == [
            ("User", uid, "created"),
            ("User", uid, "deactivated"),
            ("Group", gid, "created"),
            ("Group", gid, "member_added"),
            ("Group", gid, "member_removed"),
            ("User", uid, "deleted"),
        ]
        events = body["events"]
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        assert body["next"] >= events[-1]["seq"]
        first = events[0]
        assert first["id"] == f"{tenant_id}:{first['seq']}" and first["tenant"] == tenant_id
        assert first["version"] == 1 and first["payload"]["userName"] == "ada" and first["at"].endswith("Z")
        assert events[3]["payload"] == {"members": [uid]}

        only = feed(c, admin, after=start, tenant=tenant_id, type="Group", op="member_added")
        assert [e["op"] for e in only["events"]] == ["member_added"]
        paged = feed(c, admin, after=start, tenant=tenant_id, limit=2)
        assert [e["op"] for e in paged["events"]] == ["created", "deactivated"]
        rest = feed(c, admin, after=paged["next"], tenant=tenant_id)
        assert len(rest["events"]) == 4
        empty = feed(c, admin, after=body["next"], tenant=tenant_id)
        assert empty["events"] == [] and empty["next"] >= body["next"]


def test_only_admin_tokens_read_the_feed(database_url: str, tenant_id: str) -> None:
    scim, admin = mint(database_url, tenant_id), mint(database_url, None, "admin")
    with client(database_url) as c:
        for headers in ({}, bearer(scim), bearer("prv_nope")):
            response = c.get("/admin/v1/events", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["status"] == "401"
        assert c.get("/scim/v2/Users", headers=bearer(admin)).status_code == 401
        assert c.get("/admin/v1/events", params={"limit": "x"}, headers=bearer(admin)).status_code == 400
        assert c.get("/admin/v1/events", params={"wait": "99"}, headers=bearer(admin)).status_code == 400


def test_long_poll_returns_early_when_an_event_arrives(fresh_database_url: str, tenant_id: str) -> None:
    database_url = fresh_database_url  # why: test_operations_yield_exactly_their_events_in_order
    scim, admin, start = mint(database_url, tenant_id), mint(database_url, None, "admin"), head(database_url)
    with client(database_url) as c:

        def later() -> None:
            time.sleep(0.7)
            c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "late"}, headers=bearer(scim))

        thread = threading.Thread(target=later)
        began = time.monotonic()
        thread.start()
        body = feed(c, admin, after=start, tenant=tenant_id, wait=20)
        elapsed = time.monotonic() - began
        thread.join()
        assert [e["op"] for e in body["events"]] == ["created"]
        assert 0.5 < elapsed < 10

        began = time.monotonic()
        assert feed(c, admin, after=body["next"], tenant=tenant_id, wait=0.5)["events"] == []
        assert time.monotonic() - began >= 0.45


def test_hooks_run_after_commit_in_order(database_url: str, tenant_id: str) -> None:
    scim = mint(database_url, tenant_id)
    seen: list[tuple[str, str]] = []

    class Hooks:
        def on_event(self, event: Any) -> None:
            if event.tenant == tenant_id:
                seen.append(("event", event.op))

        async def on_user_deactivated(self, event: Any) -> None:
            if event.tenant == tenant_id:
                seen.append(("deactivated", event.resource_id))

        def on_user_created(self, event: Any) -> None:
            raise RuntimeError("a failing hook is logged, not fatal")

    with client(database_url, hooks=Hooks()) as c:
        h = bearer(scim)
        uid = c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "hk"}, headers=h).json()["id"]
        dup = c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "HK"}, headers=h)
        assert dup.status_code == 409
        put = {"schemas": [USER], "userName": "hk", "active": False}
        assert c.put(f"/scim/v2/Users/{uid}", json=put, headers=h).status_code == 200
        eventually(lambda: len(seen) >= 3)
        time.sleep(0.3)
        assert seen == [("event", "created"), ("event", "deactivated"), ("deactivated", uid)]


def test_hooks_read_the_log_at_once_when_woken(database_url: str, tenant_id: str) -> None:
    """The hook runner polls (here every 30 s); `wake()`, which the endpoint calls after a write,
    makes it read the log now."""
    seen: list[str] = []

    async def main() -> None:
        got = asyncio.Event()

        class Hooks:
            def on_event(self, event: Any) -> None:
                if event.tenant == tenant_id:
                    seen.append(event.op)
                    got.set()

        engine = create_engine(database_url)
        runner = HookRunner(engine, Hooks(), poll_interval=30.0)
        await runner.start()
        try:
            await asyncio.sleep(0.5)  # its first read is over: it now sleeps for the poll interval
            async with write_transaction(engine) as conn:
                await append_event(
                    conn,
                    tenant_id=tenant_id,
                    at="2026-12-02T00:00:00.000000Z",
                    resource_type="User",
                    resource_id="u1",
                    op="created",
                    version=1,
                    actor=None,
                    payload={},
                )
            runner.wake()
            await asyncio.wait_for(got.wait(), 5.0)
        finally:
            await runner.stop()
            await engine.dispose()

    asyncio.run(main())
    assert seen == ["created"]
