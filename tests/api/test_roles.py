"""Roles from groups over real HTTP (`provisor serve`), on SQLite and PostgreSQL (docs/roles.md).

Every membership, mapping, rename and delete that changes a user's effective roles is checked
against the `role_granted` / `role_revoked` events it must record, and the user roles endpoint.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisor.service import roles as role_service
from provisor.service.context import RequestContext
from provisor.storage import members as member_store
from provisor.storage.engine import create_engine
from provisor.storage.event_log import latest_seq
from provisor.storage.tenants import ensure_tenant, update_settings
from provisor.storage.transactions import write_transaction
from tests.live.server import LiveServer, live_server
from tests.scim_client import PATCH_OP, USER_URN, mint_token

GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
RoleEvent = tuple[str, str, str, str]  # op, user, role, group


class App:
    """The live server seen with the tenant's SCIM token and an admin token."""

    def __init__(self, server: LiveServer, admin_token: str, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.scim = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        root = server.base_url.removesuffix("/scim/v2")
        self.admin = httpx.Client(
            base_url=f"{root}/admin/v1",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=30,
        )
        self.seen = 0

    def user(self, name: str) -> str:
        got = self.scim.post("/Users", json={"schemas": [USER_URN], "userName": name})
        assert got.status_code == 201, got.text
        return str(got.json()["id"])

    def group(self, name: str, members: list[str] = ()) -> str:  # type: ignore[assignment]
        body = {"schemas": [GROUP_URN], "displayName": name, "members": [{"value": m} for m in members]}
        got = self.scim.post("/Groups", json=body)
        assert got.status_code == 201, got.text
        return str(got.json()["id"])

    def patch(self, group_id: str, *operations: dict[str, Any]) -> None:
        got = self.scim.patch(
            f"/Groups/{group_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}
        )
        assert got.status_code in (200, 204), got.text

    def add(self, group_id: str, *ids: str) -> None:
        self.patch(group_id, {"op": "add", "path": "members", "value": [{"value": i} for i in ids]})

    def remove(self, group_id: str, member_id: str) -> None:
        self.patch(group_id, {"op": "remove", "path": f'members[value eq "{member_id}"]'})

    def map(self, group: str, role: str, status: int = 201) -> dict[str, Any]:
        got = self.admin.put("/roles", params={"tenant": self.tenant_id, "group": group, "role": role})
        assert got.status_code == status, got.text
        body: dict[str, Any] = got.json()
        return body

    def unmap(self, group: str, role: str, status: int = 204) -> None:
        got = self.admin.delete("/roles", params={"tenant": self.tenant_id, "group": group, "role": role})
        assert got.status_code == status, got.text

    def roles(self, user_id: str) -> dict[str, list[str]]:
        got = self.admin.get(f"/users/{user_id}/roles", params={"tenant": self.tenant_id})
        assert got.status_code == 200, got.text
        return {r["role"]: r["groups"] for r in got.json()["roles"]}

    def new_events(self) -> list[RoleEvent]:
        """The role events recorded since the last call: the feed is followed until it has passed
        the head as it was at this call. On PostgreSQL a reader stops before a seq gap for up to its
        grace (storage/event_log.py), and other tests sharing the database leave such gaps."""
        head = self.admin.get("/consumers").json()["head"]
        deadline = time.monotonic() + 30
        found: list[dict[str, Any]] = []
        while self.seen < head:
            params = {
                "tenant": self.tenant_id,
                "op": "role_granted,role_revoked",
                "after": self.seen,
                "limit": 1000,
            }
            got = self.admin.get("/events", params=params)
            assert got.status_code == 200, got.text
            body = got.json()
            found += body["events"]
            if body["next"] == self.seen:
                assert time.monotonic() < deadline, f"the feed stayed at {self.seen}, head {head}"
                time.sleep(0.2)
            self.seen = body["next"]
        return [(e["op"], e["resourceId"], e["payload"]["role"], e["payload"]["group"]) for e in found]


def _prepare_tenant(url: str, tenant_id: str, settings: dict[str, Any]) -> None:
    async def work() -> None:
        engine = create_engine(url)
        try:
            async with write_transaction(engine) as conn:
                await ensure_tenant(conn, tenant_id)
                if settings:
                    await update_settings(conn, tenant_id, settings)
        finally:
            await engine.dispose()

    asyncio.run(work())


def _app(database_url: str, tenant_id: str, settings: dict[str, Any] | None = None) -> Iterator[App]:
    _prepare_tenant(database_url, tenant_id, settings or {})
    admin_token = mint_token(database_url, None, kind="admin", name="admin")
    with live_server(database_url, tenant_id) as server:
        yield App(server, admin_token, tenant_id)


@pytest.fixture
def app(database_url: str, tenant_id: str) -> Iterator[App]:
    yield from _app(database_url, tenant_id)


@pytest.fixture
def nested_app(database_url: str, tenant_id: str) -> Iterator[App]:
    yield from _app(database_url, tenant_id, {"indirect_groups": True})


def test_membership_changes_grant_and_revoke(app: App) -> None:
    alice, bob, carol = app.user("alice"), app.user("bob"), app.user("carol")
    admins = app.group("admins", [alice])
    ops = app.group("ops")
    assert app.map(admins, "admin")["by"] == "id"
    assert app.new_events() == [("role_granted", alice, "admin", admins)]
    assert app.roles(alice) == {"admin": [admins]}
    assert app.map(admins, "admin", status=200)["jobs"] == []  # already mapped: nothing again

    app.add(admins, bob)
    assert app.new_events() == [("role_granted", bob, "admin", admins)]
    app.remove(admins, bob)
    assert app.new_events() == [("role_revoked", bob, "admin", admins)]
    assert app.roles(bob) == {}

    # PUT replaces the members: alice leaves, carol joins.
    put = {"schemas": [GROUP_URN], "displayName": "admins", "members": [{"value": carol}]}
    assert app.scim.put(f"/Groups/{admins}", json=put).status_code == 200
    assert sorted(app.new_events()) == [
        ("role_granted", carol, "admin", admins),
        ("role_revoked", alice, "admin", admins),
    ]

    # Two groups granting the same role: leaving one loses nothing and records nothing.
    app.map(ops, "admin")
    app.add(ops, carol)
    assert app.new_events() == []
    assert app.roles(carol) == {"admin": sorted([admins, ops])}
    app.remove(admins, carol)
    assert app.new_events() == []
    assert app.roles(carol) == {"admin": [ops]}

    # Deleting the user revokes what it had.
    assert app.scim.delete(f"/Users/{carol}").status_code == 204
    assert app.new_events() == [("role_revoked", carol, "admin", ops)]
    assert app.admin.get(f"/users/{carol}/roles", params={"tenant": app.tenant_id}).status_code == 404

    # Deleting the group revokes from its members.
    app.add(ops, bob)
    assert app.new_events() == [("role_granted", bob, "admin", ops)]
    assert app.scim.delete(f"/Groups/{ops}").status_code == 204
    assert app.new_events() == [("role_revoked", bob, "admin", ops)]


def test_display_name_mapping_follows_renames_and_recreation(app: App) -> None:
    alice = app.user("alice")
    group = app.group("Engineering", [alice])
    assert app.map("engineering", "developer")["by"] == "displayName"  # case-insensitive, like uniqueness
    assert app.new_events() == [("role_granted", alice, "developer", group)]

    rename = {"op": "replace", "path": "displayName", "value": "Marketing"}
    app.patch(group, rename)
    assert app.new_events() == [("role_revoked", alice, "developer", group)]
    app.patch(group, {**rename, "value": "Engineering"})
    assert app.new_events() == [("role_granted", alice, "developer", group)]

    assert app.scim.delete(f"/Groups/{group}").status_code == 204
    assert app.new_events() == [("role_revoked", alice, "developer", group)]
    again = app.group("Engineering", [alice])  # an IdP re-creates it: the mapping still applies
    assert app.new_events() == [("role_granted", alice, "developer", again)]
    assert app.roles(alice) == {"developer": [again]}

    listed = app.admin.get("/roles", params={"tenant": app.tenant_id}).json()["mappings"]
    assert listed == [{"group": "engineering", "by": "displayName", "role": "developer"}]
    app.unmap("Engineering", "developer")
    assert app.new_events() == [("role_revoked", alice, "developer", again)]
    app.unmap("Engineering", "developer", status=404)
    assert app.roles(alice) == {}


def test_nested_groups_count_with_indirect_groups(nested_app: App) -> None:
    app = nested_app
    alice = app.user("alice")
    team = app.group("team", [alice])
    dept = app.group("dept")
    app.map(dept, "staff")
    assert app.new_events() == []
    app.add(dept, team)  # alice is now in dept through team
    assert app.new_events() == [("role_granted", alice, "staff", dept)]
    assert app.roles(alice) == {"staff": [dept]}
    app.remove(dept, team)
    assert app.new_events() == [("role_revoked", alice, "staff", dept)]
    app.add(dept, team)
    app.new_events()
    app.unmap(dept, "staff")
    assert app.new_events() == [("role_revoked", alice, "staff", dept)]


def test_bad_requests_and_unknown_tenant(app: App) -> None:
    params = {"tenant": "no-such-tenant", "group": "x", "role": "r"}
    assert app.admin.put("/roles", params=params).status_code == 404
    assert app.admin.get("/roles", params={"tenant": "no-such-tenant"}).status_code == 404
    assert app.admin.put("/roles", params={"tenant": app.tenant_id, "group": "x"}).status_code == 400
    for group, role in (("g" * 501, "r"), ("g", "r" * 201), (" ", "r")):
        bad = app.admin.put("/roles", params={"tenant": app.tenant_id, "group": group, "role": role})
        assert bad.status_code == 400, bad.text
    assert app.admin.get("/users/nope/roles", params={"tenant": app.tenant_id}).status_code == 404
    assert app.admin.get("/roles", params={"tenant": app.tenant_id}).json() == {"mappings": []}


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    provisor = Path(sys.executable).with_name("provisor")
    return subprocess.run(
        [str(provisor), *args, "--database-url", url], capture_output=True, text=True, timeout=60
    )


def test_cli_map_unmap_list(app: App, database_url: str) -> None:
    alice = app.user("alice")
    group = app.group("Support", [alice])
    tenant = app.tenant_id
    done = _cli(database_url, "roles", "map", "--tenant", tenant, "--group", "Support", "--role", "agent")
    assert done.returncode == 0, done.stderr
    assert "mapped groups named support -> role agent" in done.stdout
    assert app.new_events() == [("role_granted", alice, "agent", group)]
    listed = _cli(database_url, "roles", "list", "--tenant", tenant)
    assert listed.stdout.splitlines() == ["agent\tdisplayName\tsupport"]
    gone = _cli(database_url, "roles", "unmap", "--tenant", tenant, "--group", "Support", "--role", "agent")
    assert gone.returncode == 0, gone.stderr
    assert app.new_events() == [("role_revoked", alice, "agent", group)]
    again = _cli(database_url, "roles", "unmap", "--tenant", tenant, "--group", "Support", "--role", "agent")
    assert again.returncode == 2 and "no mapping" in again.stderr
    for args in (("list",), ("jobs",), ("map", "--group", "g", "--role", "r")):
        unknown = _cli(database_url, "roles", *args, "--tenant", "no-such-tenant")
        assert unknown.returncode == 2, unknown.stderr
        assert "no tenant no-such-tenant" in unknown.stderr and "Traceback" not in unknown.stderr


async def _join(url: str, tenant_id: str, group_id: str, user_id: str) -> int:
    """Add a member the way the group service does, in-process; the role events it recorded."""
    engine = create_engine(url)
    try:
        async with write_transaction(engine) as conn:
            before = await latest_seq(conn)
            await member_store.add_new_members(conn, tenant_id, group_id, [(user_id, "User", None)])
            ctx = RequestContext(tenant_id, "test", "")
            await role_service.membership_changed(conn, ctx, group_id, [user_id], [])
            after = await latest_seq(conn)
        return after - before
    finally:
        await engine.dispose()


def test_background_job_resumes_after_a_crash(fresh_database_url: str, tenant_id: str) -> None:
    """A map of a group larger than one batch is a job; one batch committed, then the process
    'crashes': a server started afterwards resumes from the stored cursor, no member twice. On a
    database of its own: any serving process's job worker would otherwise run the job meanwhile."""
    database_url = fresh_database_url
    apps = _app(database_url, tenant_id)
    app = next(apps)
    users = [app.user(f"user{i}") for i in range(5)]
    extra = [app.user(f"extra{i}") for i in range(8)]
    group = app.group("big", users)
    apps.close()  # the server stops

    async def map_and_one_step() -> role_service.RoleJob | None:
        engine = create_engine(database_url)
        try:
            result = await role_service.change_mapping(engine, tenant_id, group, "reader", add=True, batch=2)
            [job] = result.jobs
            assert (job.state, job.processed, job.total) == ("running", 0, 5)
            return await role_service.run_job_step(engine, tenant_id, job.id, batch=2)
        finally:
            await engine.dispose()

    job = asyncio.run(map_and_one_step())
    assert job is not None and (job.state, job.processed) == ("running", 2)
    assert job.cursor is not None
    # A member joining past the cursor while the job runs is the job's to grant: no event now.
    late = next(u for u in sorted(extra) if u > job.cursor)
    assert asyncio.run(_join(database_url, tenant_id, group, late)) == 0
    jobs = _cli(database_url, "roles", "jobs", "--tenant", tenant_id)
    assert jobs.returncode == 0 and jobs.stdout.split("\t")[-2:] == ["running", "2/5\n"]

    restarted = _app(database_url, tenant_id)
    app = next(restarted)  # the restarted server's worker finishes the job
    try:
        deadline = time.monotonic() + 20
        while True:
            listed = app.admin.get("/roles/jobs", params={"tenant": tenant_id}).json()["jobs"]
            if listed[0]["state"] == "done" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert listed[0] | {"created": "", "updated": "", "id": ""} == {
            "id": "", "action": "map", "group": group, "role": "reader", "state": "done",
            "processed": 6, "total": 5, "created": "", "updated": "",
        }  # fmt: skip
        granted = app.new_events()
        assert sorted(granted) == sorted(("role_granted", u, "reader", group) for u in [*users, late])
        assert all(app.roles(u) == {"reader": [group]} for u in [*users, late])
    finally:
        restarted.close()


def test_concurrent_removals_from_two_granting_groups_revoke_once(app: App) -> None:
    """Leaving both groups that grant a role at the same moment: exactly one `role_revoked`
    (each change computes the user's roles after the other has committed, not beside it)."""
    from concurrent.futures import ThreadPoolExecutor

    users = [app.user(f"u{i}") for i in range(6)]
    first, second = app.group("first", users), app.group("second", users)
    app.map(first, "editor")
    app.map(second, "editor")
    assert len(app.new_events()) == len(users)  # one grant each, from the first mapping

    def remove(pair: tuple[str, str]) -> None:
        group_id, user = pair
        app.remove(group_id, user)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for user in users:
            list(pool.map(remove, [(first, user), (second, user)]))
    revoked = app.new_events()
    assert sorted(e[1] for e in revoked) == sorted(users), revoked
    assert {e[0] for e in revoked} == {"role_revoked"}
