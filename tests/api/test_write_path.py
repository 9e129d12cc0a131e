"""The write path's shortcuts keep the stored state exact (SQLite and PostgreSQL).

PATCH and PUT rewrite only the index rows that changed, and a user's PATCH/PUT answer takes its
`groups` from the statement that locks the user. These tests compare the stored index with the
rows recomputed from the stored document, and the answer's groups with a fresh GET.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.schema.registry import default_registry
from provisor.storage.indexing import index_rows
from provisor.storage.instrument import observe_statements
from provisor.storage.tables import attribute_index, events, resources
from provisor.storage.transactions import read_transaction, write_transaction
from tests.api.test_concurrent_requests import user, with_app
from tests.scim_client import GROUP_URN, PATCH_OP, USER_URN, Scim, orphaned_index_rows, run_db


def stored_index(scim: Scim, resource_id: str) -> tuple[set[tuple[str, str, bool]], dict[str, Any]]:
    async def work(engine: AsyncEngine) -> tuple[set[tuple[str, str, bool]], dict[str, Any]]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(
                select(
                    attribute_index.c.attr, attribute_index.c.value_norm, attribute_index.c.is_unique
                ).where(
                    attribute_index.c.tenant_id == scim.tenant_id,
                    attribute_index.c.resource_id == resource_id,
                )
            )
            doc = (
                await conn.execute(
                    select(resources.c.doc).where(
                        resources.c.tenant_id == scim.tenant_id, resources.c.id == resource_id
                    )
                )
            ).scalar_one()
        return {(a, v, bool(u)) for a, v, u in rows}, doc

    return run_db(scim.database_url, work)


def expected_index(doc: dict[str, Any]) -> set[tuple[str, str, bool]]:
    rt = default_registry().resource_type("User")
    return set(index_rows(rt, doc, frozenset({"userName"})))


def test_patch_and_put_leave_exactly_the_index_of_the_stored_document(scim: Scim) -> None:
    user = scim.create_user(
        "Index.Me@example.com",
        displayName="Before",
        emails=[{"value": "one@example.com"}, {"value": "two@example.com"}],
    )
    path = f"/Users/{user['id']}"
    steps: list[tuple[str, Any]] = [
        ("patch", [{"op": "replace", "path": "active", "value": False}]),  # no indexed value changes
        ("patch", [{"op": "replace", "path": "displayName", "value": "After"}]),
        ("patch", [{"op": "remove", "path": 'emails[value eq "one@example.com"]'}]),
        ("patch", [{"op": "add", "path": "emails", "value": [{"value": "THREE@example.com"}]}]),
        ("patch", [{"op": "replace", "path": "userName", "value": "Renamed@example.com"}]),
        ("patch", [{"op": "remove", "path": "displayName"}]),
        ("put", {"schemas": [USER_URN], "userName": "Put@example.com", "externalId": "ext-1"}),
        ("put", {"schemas": [USER_URN], "userName": "Put@example.com", "externalId": "ext-1", "title": "x"}),
    ]
    for kind, body in steps:
        response = scim.patch_ops(path, *body) if kind == "patch" else scim.put(path, body)
        assert response.status_code == 200, response.text
        index, doc = stored_index(scim, user["id"])
        assert index == expected_index(doc), (kind, body)
    assert scim.get("/Users", params={"filter": 'displayName eq "Before"'}).json()["totalResults"] == 0
    assert (
        scim.get("/Users", params={"filter": 'userName eq "index.me@example.com"'}).json()["totalResults"]
        == 0
    )
    found = scim.get("/Users", params={"filter": 'externalId eq "ext-1"'}).json()
    assert [r["id"] for r in found["Resources"]] == [user["id"]]


def test_user_patch_and_put_answers_carry_the_same_groups_as_a_get(scim: Scim) -> None:
    user = scim.create_user("grouped@example.com")
    first = scim.create_group("Alpha", [user["id"]])
    second = scim.create_group("Beta", [user["id"]])
    path = f"/Users/{user['id']}"
    patched = scim.patch_ops(path, {"op": "replace", "path": "title", "value": "T"})
    put = scim.put(path, {"schemas": [USER_URN], "userName": "grouped@example.com", "title": "U"})
    got = scim.get(path).json()
    expected = [{"value": g["id"], "display": g["displayName"]} for g in (first, second)]
    for body in (patched.json(), put.json(), got):
        assert [{"value": g["value"], "display": g["display"]} for g in body["groups"]] == expected
    excluded = scim.patch_ops(
        path, {"op": "replace", "path": "title", "value": "V"}, params={"excludedAttributes": "groups"}
    )
    assert excluded.status_code == 200 and "groups" not in excluded.json()


def test_a_refused_create_takes_no_event_sequence_number(scim: Scim) -> None:
    """A gap in `events.seq` makes change-feed readers wait for it (docs/events.md): a 409 must not
    leave one, on PostgreSQL's single-statement create as on the transactional path."""

    def last_seq() -> int:
        async def work(engine: AsyncEngine) -> int:
            async with read_transaction(engine) as conn:
                return int((await conn.execute(select(func.max(events.c.seq)))).scalar_one())

        return run_db(scim.database_url, work)

    scim.create_user("taken@example.com")
    before = last_seq()
    assert scim.post("/Users", {"schemas": [USER_URN], "userName": "TAKEN@example.com"}).status_code == 409
    scim.create_user("next@example.com")
    assert last_seq() == before + 1


def group_events(scim: Scim, group_id: str) -> list[tuple[str, Any]]:
    async def work(engine: AsyncEngine) -> list[tuple[str, Any]]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(
                select(events.c.op, events.c.payload)
                .where(events.c.tenant_id == scim.tenant_id, events.c.resource_id == group_id)
                .order_by(events.c.seq)
            )
            return [(op, payload) for op, payload in rows]

    return run_db(scim.database_url, work)


def test_a_member_push_that_names_an_unknown_or_the_group_itself_writes_nothing(scim: Scim) -> None:
    """The one-statement member path checks every id before it writes anything."""
    known = scim.create_user("known@example.com")
    group = scim.create_group("Push", [])
    path = f"/Groups/{group['id']}"
    before = scim.get(path)
    for ids in (["00000000-0000-0000-0000-000000000000", known["id"]], [known["id"], group["id"]]):
        response = scim.patch_ops(
            path, {"op": "add", "path": "members", "value": [{"value": i} for i in ids]}
        )
        assert response.status_code == 400, response.text
    after = scim.get(path)
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]
    assert [op for op, _ in group_events(scim, group["id"])] == ["created"]


def test_a_member_push_records_added_then_removed_in_order(scim: Scim) -> None:
    users = [scim.create_user(f"m{i}@example.com")["id"] for i in range(4)]
    group = scim.create_group("Order", [users[3], users[0]])
    path = f"/Groups/{group['id']}"
    response = scim.patch_ops(
        path,
        {
            "op": "add",
            "path": "members",
            "value": [{"value": users[2]}, {"value": users[1]}, {"value": users[0]}],
        },
        {"op": "remove", "path": "members", "value": [{"value": users[3]}, {"value": users[0]}]},
    )
    assert response.status_code == 204, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert sorted(m["value"] for m in scim.get(path).json()["members"]) == sorted(users[1:3])
    tail = group_events(scim, group["id"])[-2:]
    assert tail == [
        ("member_added", {"members": [users[2], users[1]]}),
        ("member_removed", {"members": sorted([users[3], users[0]])}),
    ]


class _TaskStatements:
    """The statements SQLAlchemy's execution layer runs for one asyncio task (an observer for
    storage/instrument.py): the app's background workers run theirs in tasks of their own."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.seen: list[str] = []

    def started(self, statement: str, system: str) -> None:
        if self.task is not None and asyncio.current_task() is self.task:
            self.seen.append(statement)

    def ended(self, token: Any, statement: str) -> None:
        return None

    def failed(self, token: Any, error: BaseException) -> None:
        return None


def test_a_member_push_runs_no_statement_through_sqlalchemy(database_url: str, tenant_id: str) -> None:
    """A member push (PATCH answered with 204, no If-Match) of a tenant that maps no group to a
    role is the group's read and one change at once, both sent to the driver directly. A statement
    through SQLAlchemy's execution layer costs a worker several times the CPU of a direct one
    (docs/performance.md): the lookup of the tenant's role mappings, one of those, had doubled a
    push's CPU; it is part of the change at once."""

    async def work(client: httpx.AsyncClient, engine: Any) -> None:
        ids = []
        for k in range(3):
            created = await client.post("/Users", json=user(f"push{k}@example.com"))
            ids.append(created.json()["id"])
        group = await client.post("/Groups", json={"schemas": [GROUP_URN], "displayName": "Pushed"})
        path = f"/Groups/{group.json()['id']}"

        async def push(*operations: dict[str, Any]) -> None:
            done = await client.patch(path, json={"schemas": [PATCH_OP], "Operations": list(operations)})
            assert done.status_code == 204, done.text

        await push({"op": "add", "path": "members", "value": [{"value": ids[0]}]})  # caches warm
        recorder = _TaskStatements()
        observe_statements(engine, recorder, "test_member_push")
        recorder.task = asyncio.current_task()
        await push({"op": "add", "path": "members", "value": [{"value": ids[1]}, {"value": ids[2]}]})
        await push({"op": "remove", "path": f'members[value eq "{ids[1]}"]'})
        await push({"op": "remove", "path": "members", "value": [{"value": ids[0]}]})
        recorder.task = None
        assert recorder.seen == []
        members = (await client.get(path)).json()["members"]
        assert [m["value"] for m in members] == [ids[2]]

    with_app(database_url, tenant_id, work)


def test_a_deleted_resource_takes_its_index_rows_with_it(scim: Scim) -> None:
    """Index rows have no foreign key (migration 0008): DELETE removes them itself, so the values
    a deleted user or group held are free again, and nothing is left behind."""
    user = scim.create_user("Gone@example.com", externalId="ext-gone", emails=[{"value": "gone@example.com"}])
    group = scim.create_group("Gone team", members=[user["id"]], externalId="grp-gone")
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert orphaned_index_rows(scim.database_url, scim.tenant_id) == []
    again = scim.create_user(
        "gone@example.com", externalId="ext-gone", emails=[{"value": "gone@example.com"}]
    )
    assert scim.create_group("Gone team", externalId="grp-gone")["id"] != group["id"]
    found = scim.get("/Users", params={"filter": 'emails.value eq "gone@example.com"'}).json()
    assert [r["id"] for r in found["Resources"]] == [again["id"]]


def test_the_orphan_check_sees_an_index_row_without_its_resource(scim: Scim) -> None:
    """The check every API test ends with (tests/conftest.py) must be able to fail."""
    row = {"tenant_id": scim.tenant_id, "resource_type": "User", "attr": "userName", "value_norm": "x"}

    async def insert(engine: AsyncEngine) -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(attribute_index.insert().values(**row, resource_id="no-such-user"))

    async def remove(engine: AsyncEngine) -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(attribute_index.delete().where(attribute_index.c.tenant_id == scim.tenant_id))

    run_db(scim.database_url, insert)
    try:
        assert orphaned_index_rows(scim.database_url, scim.tenant_id) == [("userName", "no-such-user")]
    finally:
        run_db(scim.database_url, remove)
