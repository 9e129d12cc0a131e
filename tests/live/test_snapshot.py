"""Snapshot, then feed: a consumer that starts in the middle of concurrent writes ends with exactly
the stored state, having applied every change once (docs/reconciliation.md).

A real `provisor serve` takes creates, PATCH replaces, deactivations, deletes and group member adds
from several threads while the test loads `GET /admin/v1/snapshot`, then follows the feed as a named
consumer from the snapshot's seq, applying each event to its copy. Applying strictly catches a
change seen twice (a create of a present id, an update whose version is not the copy's + 1, a member
added twice) as well as a change missed (the final comparison with a full read of the database).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from bench.seed import TenantPlan, seed
from sqlalchemy import func, select, text, update

from provisor.clock import now
from provisor.storage.engine import create_engine
from provisor.storage.outbox import append_event
from provisor.storage.tables import events, group_members, resources
from provisor.storage.transactions import read_transaction, write_transaction
from tests.live.server import LiveServer, live_server
from tests.scim_client import mint_token

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class Copy:
    """The consumer's replica: users by id, groups by id with their member ids."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    applied: int = 0

    def load(self, doc: dict[str, Any]) -> None:
        if doc["meta"]["resourceType"] == "User":
            self.users[doc["id"]] = doc
        else:
            members = {m["value"] for m in doc.pop("members", [])}
            self.groups[doc["id"]], self.members[doc["id"]] = doc, members

    def apply(self, event: dict[str, Any]) -> None:
        rid, op, payload = event["resourceId"], event["op"], event["payload"]
        table = self.users if event["resourceType"] == "User" else self.groups
        self.applied += 1
        if op == "created":
            assert rid not in table, f"created twice: {event}"
            table[rid] = payload
            if table is self.groups:
                self.members[rid] = set()
        elif op in ("updated", "activated", "deactivated"):
            assert rid in table, f"update of an unknown resource: {event}"
            if table is self.users:
                had = table[rid]["meta"]["version"]
                assert payload["meta"]["version"] == _next(had), f"applied twice or skipped: {event}"
            table[rid] = payload
        elif op == "deleted":
            assert rid in table, f"deleted twice: {event}"
            del table[rid]
            self.members.pop(rid, None)
        elif op == "member_added":
            added = set(payload["members"])
            assert not added & self.members[rid], f"member added twice: {event}"
            self.members[rid] |= added
        elif op == "member_removed":
            removed = set(payload["members"])
            assert removed <= self.members[rid], f"member removed twice: {event}"
            self.members[rid] -= removed
        else:
            raise AssertionError(f"unexpected op {op}")


def _next(version: str) -> str:
    number = int(version.removeprefix('W/"').rstrip('"'))
    return f'W/"{number + 1}"'


class Writers:
    """Threads issuing a mix of writes over HTTP until stopped; each owns a disjoint set of users."""

    def __init__(self, server: LiveServer, user_ids: list[str], group_ids: list[str], threads: int) -> None:
        self.server, self.group_ids, self.stop = server, group_ids, threading.Event()
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        share = len(user_ids) // threads
        self.threads = [
            threading.Thread(target=self.run, args=(n, user_ids[n * share : (n + 1) * share]), daemon=True)
            for n in range(threads)
        ]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def run(self, n: int, mine: list[str]) -> None:
        rnd = random.Random(n)
        pool = list(mine)
        base, headers = self.server.base_url, self.server.headers
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            created = 0
            while not self.stop.is_set():
                kind = rnd.choice(("create", "replace", "replace", "deactivate", "delete", "member"))
                if kind == "create":
                    created += 1
                    body = {"schemas": [USER], "userName": f"w{n}-{created}@example.com", "active": True}
                    response = http.post("/Users", json=body)
                    if response.status_code == 201:
                        pool.append(response.json()["id"])
                elif kind == "delete" and pool:
                    response = http.delete(f"/Users/{pool.pop(rnd.randrange(len(pool)))}")
                elif kind == "member" and pool and self.group_ids:
                    op = {"op": "add", "path": "members", "value": [{"value": rnd.choice(pool)}]}
                    group = rnd.choice(self.group_ids)
                    response = http.patch(f"/Groups/{group}", json={"schemas": [PATCH], "Operations": [op]})
                elif pool:
                    if kind == "replace":
                        value: Any = f"Renamed {rnd.random():.6f}"
                        op = {"op": "replace", "path": "displayName", "value": value}
                    else:
                        op = {"op": "replace", "path": "active", "value": False}
                    response = http.patch(
                        f"/Users/{rnd.choice(pool)}", json={"schemas": [PATCH], "Operations": [op]}
                    )
                else:
                    continue
                assert response.status_code < 500, response.text
                with self.lock:
                    self.counts[kind] = self.counts.get(kind, 0) + 1


def _admin(server: LiveServer, token: str) -> httpx.Client:
    root = server.base_url.removesuffix("/scim/v2")
    return httpx.Client(
        base_url=f"{root}/admin/v1", headers={"Authorization": f"Bearer {token}"}, timeout=120
    )


def _load_snapshot(admin: httpx.Client, tenant: str, copy: Copy) -> int:
    seq = -1
    with admin.stream("GET", "/snapshot", params={"tenant": tenant}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = response.iter_lines()
        first = orjson.loads(next(lines))
        assert list(first) == ["seq"]
        seq = first["seq"]
        for line in lines:
            if line:
                copy.load(orjson.loads(line))
    return seq


def _follow(admin: httpx.Client, name: str, copy: Copy) -> int:
    """One pass of the consumer loop: read a page after its position, apply it, commit. Returns
    the number of events applied."""
    page = admin.get("/events", params={"consumer": name, "limit": 1000}).json()
    for event in page["events"]:
        copy.apply(event)
    committed = admin.put(f"/consumers/{name}", json={"seq": page["next"]})
    assert committed.status_code == 200, committed.text
    return len(page["events"])


def _stored(url: str, tenant: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, set[str]]]:
    """A full read of the tenant's stored rows, straight from the tables (not the snapshot's code):
    users and groups as (document, version, lastModified), and group members."""

    async def work() -> tuple[dict[str, Any], dict[str, Any], dict[str, set[str]]]:
        engine = create_engine(url)
        try:
            async with read_transaction(engine) as conn:
                r = resources.c
                rows = await conn.execute(
                    select(r.id, r.resource_type, r.doc, r.version, r.last_modified).where(
                        r.tenant_id == tenant
                    )
                )
                out: dict[str, dict[str, Any]] = {"User": {}, "Group": {}}
                for rid, kind, doc, version, modified in rows:
                    out[kind][rid] = (doc, version, modified)
                members: dict[str, set[str]] = {gid: set() for gid in out["Group"]}
                gm = group_members.c
                for gid, mid in await conn.execute(
                    select(gm.group_id, gm.member_id).where(gm.tenant_id == tenant)
                ):
                    members[gid].add(mid)
            return out["User"], out["Group"], members
        finally:
            await engine.dispose()

    return asyncio.run(work())


def _as_stored(docs: dict[str, dict[str, Any]], *, with_meta: bool) -> dict[str, Any]:
    """The copy's rendered resources back as (document, version, lastModified)."""
    out: dict[str, Any] = {}
    for rid, doc in docs.items():
        body = {k: v for k, v in doc.items() if k not in ("schemas", "id", "meta")}
        meta = doc["meta"]
        version = int(meta["version"].removeprefix('W/"').rstrip('"'))
        out[rid] = (body, version, meta["lastModified"]) if with_meta else body
    return out


def run_mid_write_consumer(
    url: str, tenant: str, users: int, groups: int, write_seconds: float, extra_snapshots: int = 0
) -> None:
    mint_token(url, tenant)
    admin_token = mint_token(url, None, kind="admin")
    plan = TenantPlan(users=users, groups={f"group-{n}": 20 for n in range(groups)})
    seeded = asyncio.run(seed(url, {tenant: plan}, log=lambda *_: None))[tenant]
    user_ids = [uid for uid, _ in seeded.users]
    name = f"replica-{tenant}"
    with live_server(url, tenant, workers=2) as server, _admin(server, admin_token) as admin:
        with Writers(server, user_ids, list(seeded.groups.values()), threads=3) as writers:
            time.sleep(0.5)  # the consumer starts with writes in flight
            copy = Copy()
            started = time.perf_counter()
            seq = _load_snapshot(admin, tenant, copy)
            took = time.perf_counter() - started
            assert len(copy.users) >= users - 1000 and len(copy.groups) == groups
            assert admin.put(f"/consumers/{name}", json={"seq": seq, "tenant": tenant}).status_code == 200
            later: list[tuple[int, Copy]] = []  # more consumers starting mid-writes, replayed below
            deadline = time.monotonic() + write_seconds
            while time.monotonic() < deadline:
                _follow(admin, name, copy)
                if len(later) < extra_snapshots:
                    more = Copy()
                    later.append((_load_snapshot(admin, tenant, more), more))
                time.sleep(0.05)
        head = admin.get("/consumers").json()["head"]
        # Drain: up to the head as it stands now that writers stopped (gaps wait out their grace).
        drain_deadline = time.monotonic() + 60
        while admin.get(f"/consumers/{name}").json()["seq"] < head:
            _follow(admin, name, copy)
            assert time.monotonic() < drain_deadline, "the feed did not reach the head"
        assert admin.delete(f"/consumers/{name}").status_code == 204
        for after, more in later:
            while after < head:
                page = admin.get("/events", params={"after": after, "tenant": tenant, "limit": 1000}).json()
                for event in page["events"]:
                    more.apply(event)
                after = page["next"]
    print(
        f"\nsnapshot of {users:,} users: {took:.2f}s; writes {writers.counts}; events applied {copy.applied}"
    )
    assert sum(writers.counts.values()) > 20 and copy.applied > 20
    users_stored, groups_stored, members_stored = _stored(url, tenant)
    for replica in (copy, *(more for _, more in later)):
        assert _as_stored(replica.users, with_meta=True) == users_stored
        # A group's meta moves with membership changes, which member events describe as deltas only.
        assert _as_stored(replica.groups, with_meta=False) == {k: v[0] for k, v in groups_stored.items()}
        assert replica.members == members_stored


def test_a_consumer_starting_mid_writes_converges_exactly(fresh_database_url: str, tenant_id: str) -> None:
    run_mid_write_consumer(
        fresh_database_url, tenant_id, users=1000, groups=5, write_seconds=2.0, extra_snapshots=5
    )


@pytest.mark.slow
def test_a_consumer_starting_mid_writes_converges_exactly_at_100k(
    fresh_database_url: str, tenant_id: str
) -> None:
    run_mid_write_consumer(fresh_database_url, tenant_id, users=100_000, groups=20, write_seconds=5.0)


def test_a_snapshot_waits_for_a_writer_holding_a_lower_seq(fresh_database_url: str, tenant_id: str) -> None:
    """The race the snapshot's lock exists for, made deterministic: a write transaction has drawn
    seq k and is still open; on PostgreSQL a later write (k+1) is already committed. A snapshot taken
    now must not answer "N = k+1" without k's change (the feed from k+1 would never deliver k): it
    either waits for k's commit and includes it, or reports an N below k without it."""
    url = fresh_database_url
    admin_token = mint_token(url, None, kind="admin")
    mint_token(url, tenant_id)
    seeded = asyncio.run(seed(url, {tenant_id: TenantPlan(users=3)}, log=lambda *_: None))[tenant_id]
    target = seeded.users[0][0]
    held_open, release, held_seq = threading.Event(), threading.Event(), []

    async def hold() -> None:
        engine = create_engine(url)
        try:
            async with write_transaction(engine) as conn:
                await conn.execute(
                    update(resources)
                    .where(resources.c.tenant_id == tenant_id, resources.c.id == target)
                    .values(doc={"userName": "changed@example.com"}, version=resources.c.version + 1)
                )
                await append_event(
                    conn,
                    tenant_id=tenant_id,
                    at=now(),
                    resource_type="User",
                    resource_id=target,
                    op="updated",
                    version=2,
                    actor="test",
                    payload=None,
                )
                held_seq.append(int((await conn.execute(select(func.max(events.c.seq)))).scalar() or 0))
                held_open.set()
                await asyncio.to_thread(release.wait, 30)
        finally:
            await engine.dispose()

    async def later_write() -> None:
        engine = create_engine(url)
        try:
            async with write_transaction(engine) as conn:
                await append_event(
                    conn,
                    tenant_id=tenant_id,
                    at=now(),
                    resource_type="User",
                    resource_id=seeded.users[1][0],
                    op="updated",
                    version=2,
                    actor="test",
                    payload=None,
                )
        finally:
            await engine.dispose()

    result: list[tuple[int, Copy]] = []
    with live_server(url, tenant_id) as server, _admin(server, admin_token) as admin:
        holder = threading.Thread(target=lambda: asyncio.run(hold()), daemon=True)
        holder.start()
        assert held_open.wait(30)
        postgres = url.startswith("postgresql")
        if postgres:  # SQLite serialises writers: nothing can commit after k while k is open
            asyncio.run(later_write())

        def take() -> None:
            copy = Copy()
            result.append((_load_snapshot(admin, tenant_id, copy), copy))

        taker = threading.Thread(target=take, daemon=True)
        taker.start()
        taker.join(timeout=1.0)
        waited = taker.is_alive()
        release.set()
        holder.join(30)
        taker.join(30)
    seq, copy = result[0]
    changed = copy.users[target]["userName"] == "changed@example.com"
    assert changed == (seq >= held_seq[0]), (seq, held_seq, changed)
    if postgres:
        assert waited and changed and seq == held_seq[0] + 1


def test_a_client_leaving_mid_snapshot_ends_its_transaction(fresh_database_url: str, tenant_id: str) -> None:
    """The stream's transaction and connection end when the client goes away half-way (5,000 users
    are megabytes: the server is mid-stream): a held transaction would pin PostgreSQL's vacuum
    horizon (or SQLite's WAL) for as long as it lived. A client leaving is not a server fault: it
    is not logged as one. The clients leave at several points: most often the server is then
    inside a page's read, whose statement the disconnect cancels, and SQLAlchemy discards the
    connection; ending that transaction with a commit raised `PendingRollbackError`, logged as an
    unhandled error with its traceback each time (and a dozen of those filled the pipe this
    harness once gave the server's stderr, which then hung)."""
    url = fresh_database_url
    admin_token = mint_token(url, None, kind="admin")
    mint_token(url, tenant_id)
    asyncio.run(seed(url, {tenant_id: TenantPlan(users=5_000)}, log=lambda *_: None))
    with live_server(url, tenant_id) as server, _admin(server, admin_token) as admin:
        for read in (1, 2, 2, 3, 50, 500, 1_500, 3_000, 1, 2, 2, 3, 50, 500, 1_500, 3_000):
            with admin.stream("GET", "/snapshot", params={"tenant": tenant_id}) as response:
                lines = response.iter_lines()
                assert "seq" in orjson.loads(next(lines))
                for _ in range(read):
                    next(lines)
        if url.startswith("postgresql"):

            async def open_transactions() -> int:
                engine = create_engine(url)
                try:
                    async with engine.connect() as conn:
                        query = text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                        )
                        return int((await conn.execute(query)).scalar() or 0)
                finally:
                    await engine.dispose()

            deadline = time.monotonic() + 10
            while asyncio.run(open_transactions()) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert asyncio.run(open_transactions()) == 0
        log = server.log()
        assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
        # The server still answers, and a full snapshot still comes through.
        copy = Copy()
        _load_snapshot(admin, tenant_id, copy)
        assert len(copy.users) == 5_000
