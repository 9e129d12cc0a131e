"""storage/direct.py on real databases.

Direct statements skip SQLAlchemy's execution layer, so what that layer did for free is checked
here on both engines: JSON results decoded, writes joining the caller's transaction (on PostgreSQL
through the asyncpg adapter's private `_start_transaction`), driver integrity errors raised as
`IntegrityError`, kept connections bounded and closed on dispose, and a cancelled read never kept.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from provisor.storage import resources, tenants, tokens
from provisor.storage.direct import DirectStatement, execute_many, reader
from provisor.storage.errors import is_unique_violation
from provisor.storage.kind import backend
from provisor.storage.migrate import upgrade
from provisor.storage.outbox import append_event
from provisor.storage.tables import attribute_index, events, group_members
from provisor.storage.tables import resources as resource_rows
from provisor.storage.tables import tenants as tenant_rows
from provisor.storage.transactions import write_transaction
from tests.scim_client import run_db

AT = "2026-01-01T00:00:00.000000Z"
_INDEX_COLUMNS = ("tenant_id", "resource_type", "attr", "value_norm", "resource_id", "is_unique")
INSERT_INDEX = DirectStatement(
    insert(attribute_index).values({c: bindparam(c, type_=attribute_index.c[c].type) for c in _INDEX_COLUMNS})
)
BACKEND_PID = DirectStatement(select(func.pg_backend_pid()))
#: Not a read by key, so it takes a kept connection on SQLite too.
READ_DOC = DirectStatement(select(resource_rows.c.doc).where(resource_rows.c.id == bindparam("id")))


class Boom(Exception):
    pass


async def add(engine: AsyncEngine, tenant: str, rtype: str, doc: dict[str, Any], unique: str = "") -> str:
    """Insert a resource in its own transaction; `unique` adds a unique userName index row."""
    rid = str(uuid.uuid4())
    index = [("userName", unique, True)] if unique else []
    async with write_transaction(engine) as conn:
        await resources.insert_resource(
            conn, tenant_id=tenant, resource_type=rtype, resource_id=rid, at=AT, doc=doc, index=index
        )
    return rid


async def count(engine: AsyncEngine, table: Any, tenant: str) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.tenant_id == tenant)
        return int((await conn.execute(query)).scalar_one())


def test_fetch_decodes_json(database_url: str, tenant_id: str) -> None:
    settings = {"a": 1, "nested": {"b": [1, "x"]}}
    doc = {"userName": "bjensen", "name": {"givenName": "Barbara"}, "active": True}

    async def work(engine: AsyncEngine) -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(insert(tenant_rows).values(id=tenant_id, settings=settings, created=AT))
            _, secret = await tokens.create_token(conn, tenant_id=tenant_id, name="t")
        user = await add(engine, tenant_id, "User", doc)
        group = await add(engine, tenant_id, "Group", {"displayName": "Admins"})
        async with write_transaction(engine) as conn:
            await conn.execute(
                insert(group_members).values(
                    tenant_id=tenant_id, group_id=group, member_id=user, member_type="User"
                )
            )

        assert await tenants.read_settings(engine, tenant_id) == settings
        found = await tokens.find_active(engine, secret, AT)
        assert found is not None and found[1] == settings
        stored = await resources.read_resource(engine, tenant_id, "User", user)
        assert stored == resources.StoredResource(user, "User", 1, AT, AT, doc)
        assert await resources.read_with_groups(engine, tenant_id, "User", user) == (
            stored,
            [(group, "Admins")],
        )
        assert await resources.read_resource(engine, tenant_id, "User", str(uuid.uuid4())) is None

    run_db(database_url, work)


def test_direct_writes_roll_back_with_the_transaction(database_url: str, tenant_id: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        rid = str(uuid.uuid4())
        with pytest.raises(Boom):
            async with write_transaction(engine) as conn:
                if conn.dialect.name == "postgresql":  # the direct INSERT must be what opens it
                    raw: Any = (await conn.get_raw_connection()).dbapi_connection
                    assert raw._transaction is None
                await resources.insert_resource(  # execute, then execute_many for the index row
                    conn,
                    tenant_id=tenant_id,
                    resource_type="User",
                    resource_id=rid,
                    at=AT,
                    doc={"userName": "gone"},
                    index=[("userName", "gone", True)],
                )
                await append_event(
                    conn,
                    tenant_id=tenant_id,
                    at=AT,
                    resource_type="User",
                    resource_id=rid,
                    op="created",
                    version=1,
                    actor=None,
                    payload={"userName": "gone"},
                )
                raise Boom
        assert await resources.read_resource(engine, tenant_id, "User", rid) is None
        for table in (resource_rows, attribute_index, events):
            assert await count(engine, table, tenant_id) == 0

    run_db(database_url, work)


def test_unique_violation_is_integrity_error_and_connection_survives(
    database_url: str, tenant_id: str
) -> None:
    async def work(engine: AsyncEngine) -> None:
        first = await add(engine, tenant_id, "User", {"userName": "bjensen"}, unique="bjensen")
        second = str(uuid.uuid4())
        row = {
            "tenant_id": tenant_id,
            "resource_type": "User",
            "attr": "userName",
            "value_norm": "bjensen",
            "resource_id": second,
            "is_unique": True,
        }
        with pytest.raises(IntegrityError) as raised:
            async with write_transaction(engine) as conn:
                failed_on = (await conn.get_raw_connection()).driver_connection
                await resources.insert_resource(
                    conn,
                    tenant_id=tenant_id,
                    resource_type="User",
                    resource_id=second,
                    at=AT,
                    doc={"userName": "bjensen"},
                    index=[],
                )
                await execute_many(conn, INSERT_INDEX, [row])
        assert is_unique_violation(raised.value)

        # The same pooled connection (the only one not kept by the reader) takes the next write.
        third = str(uuid.uuid4())
        async with write_transaction(engine) as conn:
            assert (await conn.get_raw_connection()).driver_connection is failed_on
            await resources.insert_resource(
                conn, tenant_id=tenant_id, resource_type="User", resource_id=third, at=AT, doc={}, index=[]
            )
        assert await resources.read_resource(engine, tenant_id, "User", first) is not None
        assert await resources.read_resource(engine, tenant_id, "User", second) is None
        assert await resources.read_resource(engine, tenant_id, "User", third) is not None

    run_db(database_url, work)


def test_kept_connections_are_bounded_and_closed_on_dispose(database_url: str, tenant_id: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        rid = await add(engine, tenant_id, "User", {"userName": "bjensen"})
        old = reader(engine)
        found = await asyncio.gather(*(old.fetch(READ_DOC, {"id": rid}) for _ in range(24)))
        assert all([tuple(r) for r in rows] == [({"userName": "bjensen"},)] for rows in found)
        kept = list(old._kept)
        assert 1 <= len(kept) <= backend(engine).driver.KEEP_CONNECTIONS
        assert cast(QueuePool, engine.pool).checkedout() == len(kept)  # the others went back

        await engine.dispose()
        assert old._kept == []
        assert not any(raw.is_valid for raw in kept)
        fresh = reader(engine)
        assert fresh is not old
        assert [tuple(r) for r in await fresh.fetch(READ_DOC, {"id": rid})] == [({"userName": "bjensen"},)]
        assert len(fresh._kept) == 1

    run_db(database_url, work)


def test_sqlite_reads_by_key_run_on_the_loop_thread(database_url: str, tenant_id: str) -> None:
    """On SQLite a read by key skips aiosqlite's thread, and still sees every committed write."""

    async def work(engine: AsyncEngine) -> None:
        direct = reader(engine)
        rid = await add(engine, tenant_id, "User", {"userName": "bjensen", "emails": [{"value": "b@x"}]})
        before = direct.inline_counts()
        found = await resources.read_resource(engine, tenant_id, "User", rid)
        assert found is not None and found.doc == {"userName": "bjensen", "emails": [{"value": "b@x"}]}
        async with write_transaction(engine) as conn:  # a write between two reads
            await conn.execute(
                resource_rows.update().where(resource_rows.c.id == rid).values(doc={"userName": "jensen"})
            )
        again = await resources.read_resource(engine, tenant_id, "User", rid)
        assert again is not None and again.doc == {"userName": "jensen"}
        reads, busy = direct.inline_counts()
        if engine.dialect.name == "sqlite":
            assert (reads - before[0], busy - before[1]) == (2, 0)
        else:
            assert (reads, busy) == (0, 0)

    run_db(database_url, work)


def test_sqlite_read_by_key_waits_on_the_thread_when_the_database_is_locked(tmp_path: Path) -> None:
    """A lock that makes even WAL readers wait (an exclusive-mode writer outside Provisor) sends
    the read to the connection's thread, which waits out the lock instead of failing."""
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}"

    async def seed(engine: AsyncEngine) -> str:
        await upgrade(engine)
        return await add(engine, "t1", "User", {"userName": "bjensen"})

    rid = run_db(url, seed)
    # Exclusive mode is only granted while no other connection has the database open.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE resources SET version = version WHERE id = ?", (rid,))
    other.execute("COMMIT")  # exclusive mode keeps the lock after the commit

    async def read(engine: AsyncEngine) -> None:
        asyncio.get_running_loop().call_later(0.3, other.close)
        found = await resources.read_resource(engine, "t1", "User", rid)
        assert found is not None and found.doc == {"userName": "bjensen"}
        assert reader(engine).inline_counts() == (0, 1)

    run_db(url, read)


def test_cancelled_fetch_is_not_kept(postgresql_url: str) -> None:
    """PostgreSQL only (`pg_sleep`): SQLite cannot interrupt a running statement from asyncio."""

    async def work(engine: AsyncEngine) -> None:
        direct = reader(engine)
        [(pid,)] = await direct.fetch(BACKEND_PID, {})
        [busy] = direct._kept
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(direct.fetch(DirectStatement(select(func.pg_sleep(1))), {}), 0.1)
        assert busy not in direct._kept
        assert not busy.is_valid
        [(new_pid,)] = await direct.fetch(BACKEND_PID, {})
        assert new_pid != pid
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.pg_backend_pid()))).scalar_one() != pid

    run_db(postgresql_url, work)


def test_a_fetch_running_while_the_engine_is_disposed_is_not_kept(postgresql_url: str) -> None:
    """PostgreSQL only (`pg_sleep`): shutting down with a request in flight leaks no connection."""

    async def work(engine: AsyncEngine) -> None:
        direct = reader(engine)
        running = asyncio.create_task(direct.fetch(DirectStatement(select(func.pg_sleep(0.3))), {}))
        await asyncio.sleep(0.1)
        await engine.dispose()
        await running
        assert direct._kept == []
        assert reader(engine) is not direct

    run_db(postgresql_url, work)


@pytest.mark.parametrize("index_changes", [False, True], ids=["document only", "index changes"])
def test_update_at_once_writes_only_over_the_version_it_read(
    database_url: str, tenant_id: str, index_changes: bool
) -> None:
    """Both shapes of the one-statement update (PostgreSQL picks a smaller statement when no index
    row changes): the version it read applies the document, the index change and one event; a
    stale version writes nothing at all, so the caller can take the locking path."""
    before = {"userName": "bjensen", "displayName": "Babs"}
    after = {**before, "displayName": "Barbara"} if index_changes else {**before, "active": False}
    old_rows = [("userName", "bjensen", True), ("displayName", "babs", False)]
    new_rows = [("userName", "bjensen", True), ("displayName", "barbara" if index_changes else "babs", False)]

    async def index_of(engine: AsyncEngine, rid: str) -> set[tuple[str, str, bool]]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(
                    attribute_index.c.attr, attribute_index.c.value_norm, attribute_index.c.is_unique
                ).where(attribute_index.c.tenant_id == tenant_id, attribute_index.c.resource_id == rid)
            )
            return {(a, v, bool(u)) for a, v, u in rows}

    async def work(engine: AsyncEngine) -> None:
        rid = str(uuid.uuid4())
        async with write_transaction(engine) as conn:
            await resources.insert_resource(
                conn,
                tenant_id=tenant_id,
                resource_type="User",
                resource_id=rid,
                at=AT,
                doc=before,
                index=old_rows,
            )
        current = resources.StoredResource(rid, "User", 1, AT, AT, before)

        def attempt(expected: int) -> Any:
            stale = resources.StoredResource(rid, "User", expected, AT, AT, before)
            stored = resources.StoredResource(
                rid, "User", expected + 1, AT, "2026-01-02T00:00:00.000000Z", after
            )
            return resources.update_at_once(
                engine,
                tenant_id=tenant_id,
                current=stale,
                stored=stored,
                index=new_rows,
                previous_index=old_rows,
                op="updated",
                actor="test",
                event_payload={"displayName": after["displayName"]},
            )

        assert await attempt(expected=7) is False  # another write got in first
        assert await resources.read_resource(engine, tenant_id, "User", rid) == current
        assert await index_of(engine, rid) == set(old_rows)
        assert await count(engine, events, tenant_id) == 0

        assert await attempt(expected=1) is True
        stored = await resources.read_resource(engine, tenant_id, "User", rid)
        assert stored is not None and (stored.version, stored.doc) == (2, after)
        assert await index_of(engine, rid) == set(new_rows)
        async with engine.connect() as conn:
            written = (
                await conn.execute(
                    select(events.c.op, events.c.version, events.c.resource_id).where(
                        events.c.tenant_id == tenant_id
                    )
                )
            ).all()
        assert [tuple(r) for r in written] == [("updated", 2, rid)]

    run_db(database_url, work)
