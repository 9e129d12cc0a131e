"""Batched statements (storage/coalesce.py) on real databases.

Calls started together with `asyncio.gather` batch deterministically: the first is sent at once and
the others arrive while it is in flight, so they go together next. On PostgreSQL that is one round
trip; on SQLite, where reads are sent alone, the writes go into one transaction, each in a
savepoint of its own. The same tests hold both databases' answers to the same expectations.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import Integer, bindparam, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.errors import ScimError
from provisor.storage import resources
from provisor.storage.direct import DirectStatement, call_column, reader
from provisor.storage.postgres import resources as pg_resources
from provisor.storage.resource_rows import READ_WITH_GROUPS
from provisor.storage.tables import attribute_index, events, group_members
from provisor.storage.tables import resources as resource_rows
from provisor.storage.transactions import write_transaction
from tests.scim_client import orphaned_index_rows, run_db

AT = "2026-01-01T00:00:00.000000Z"
LATER = "2026-01-02T00:00:00.000000Z"


async def add_user(engine: AsyncEngine, tenant: str, name: str) -> resources.StoredResource:
    rid = str(uuid.uuid4())
    doc = {"userName": name, "displayName": name.title()}
    async with write_transaction(engine) as conn:
        return await resources.insert_resource(
            conn,
            tenant_id=tenant,
            resource_type="User",
            resource_id=rid,
            at=AT,
            doc=doc,
            index=[("userName", name, True), ("displayName", name, False)],
        )


def trips(engine: AsyncEngine, statement: DirectStatement) -> tuple[int, int]:
    return reader(engine).batch_counts(statement)


def test_concurrent_reads_share_a_round_trip_and_each_gets_its_own_rows(
    database_url: str, tenant_id: str
) -> None:
    async def work(engine: AsyncEngine) -> None:
        users = [await add_user(engine, tenant_id, f"reader{k}") for k in range(4)]
        group = str(uuid.uuid4())
        async with write_transaction(engine) as conn:
            await resources.insert_resource(
                conn,
                tenant_id=tenant_id,
                resource_type="Group",
                resource_id=group,
                at=AT,
                doc={"displayName": "Readers"},
                index=[],
            )
            await conn.execute(
                group_members.insert().values(
                    tenant_id=tenant_id, group_id=group, member_id=users[1].id, member_type="User"
                )
            )
        # Duplicates and a missing id in one batch; the user in a group has two rows' worth.
        ids = [u.id for u in users] + [users[1].id, str(uuid.uuid4()), users[0].id]
        alone = [await resources.read_with_groups(engine, tenant_id, "User", rid) for rid in ids]
        before = trips(engine, READ_WITH_GROUPS)
        together = await asyncio.gather(
            *(resources.read_with_groups(engine, tenant_id, "User", rid) for rid in ids)
        )
        after = trips(engine, READ_WITH_GROUPS)
        assert list(together) == alone
        assert alone[1] == (users[1], [(group, "Readers")]) and alone[5] is None
        if engine.dialect.name == "postgresql":
            # Reads started in one pass of the loop wait for it to end and go as one batch.
            assert (after[0] - before[0], after[1] - before[1]) == (len(ids), 1)

        lookups = await asyncio.gather(
            *(
                resources.list_by_indexed_value_with_groups(
                    engine, tenant_id, "User", "userName", f"reader{k}", offset=0, limit=10
                )
                for k in (3, 1, 9)
            )
        )
        assert lookups == [[(users[3], [])], [(users[1], [(group, "Readers")])], []]

    run_db(database_url, work)


def test_concurrent_creates_claim_unique_values_without_failing_each_other(
    database_url: str, tenant_id: str
) -> None:
    """Two creates of one userName in the same batch, one of a taken userName, three free ones:
    the three and one of the pair are stored with their index rows and one event each; the others
    are 409 and leave nothing behind, not even a sequence number (the feed would wait it out)."""

    async def work(engine: AsyncEngine) -> None:
        await add_user(engine, tenant_id, "taken")
        names = ["free1", "pair", "taken", "free2", "pair", "free3"]

        async def create(name: str) -> str:
            stored = resources.StoredResource(str(uuid.uuid4()), "User", 1, AT, AT, {"userName": name})
            await resources.create_at_once(
                engine,
                tenant_id=tenant_id,
                stored=stored,
                index=[("userName", name.lower(), True), ("emails.value", f"{name}@x", False)],
                actor="test",
                event_payload={"id": stored.id, "userName": name},
            )
            return stored.id

        outcomes = await asyncio.gather(*(create(n) for n in names), return_exceptions=True)
        failed = [names[i] for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
        assert sorted(failed) == ["pair", "taken"]
        for outcome in outcomes:
            if isinstance(outcome, ScimError):
                assert outcome.status == 409 and outcome.scim_type == "uniqueness"
                assert "userName" in outcome.detail
        created = [o for o in outcomes if isinstance(o, str)]
        async with engine.connect() as conn:
            stored_names = sorted(
                (
                    await conn.execute(
                        select(resource_rows.c.doc["userName"].as_string()).where(
                            resource_rows.c.tenant_id == tenant_id
                        )
                    )
                ).scalars()
            )
            seqs = sorted(
                (
                    await conn.execute(
                        select(events.c.seq).where(events.c.tenant_id == tenant_id, events.c.op == "created")
                    )
                ).scalars()
            )
            emails = (
                await conn.execute(
                    select(func.count()).where(
                        attribute_index.c.tenant_id == tenant_id, attribute_index.c.attr == "emails.value"
                    )
                )
            ).scalar_one()
        assert stored_names == ["free1", "free2", "free3", "pair", "taken"]
        assert len(seqs) == len(created) == 4 and seqs == list(range(seqs[0], seqs[0] + 4))
        assert emails == 4
        if engine.dialect.name == "postgresql":
            calls, sent = trips(engine, pg_resources.CREATE_CLAIMING)
        else:
            calls, sent = reader(engine).sqlite_write_counts()
        assert calls - sent >= 4  # the six went in two round trips or transactions (plus earlier ones)

    run_db(database_url, work)
    assert orphaned_index_rows(database_url, tenant_id) == []


def test_concurrent_updates_of_one_version_in_a_batch_let_exactly_one_land(
    database_url: str, tenant_id: str
) -> None:
    async def work(engine: AsyncEngine) -> None:
        users = [await add_user(engine, tenant_id, f"upd{k}") for k in range(3)]
        first = users[0]

        def update(current: resources.StoredResource, title: str) -> Any:
            doc = {**current.doc, "title": title}
            stored = resources.StoredResource(current.id, "User", current.version + 1, AT, LATER, doc)
            index = [("userName", current.doc["userName"], True), ("displayName", doc["userName"], False)]
            return resources.update_at_once(
                engine,
                tenant_id=tenant_id,
                current=current,
                stored=stored,
                index=index,
                previous_index=index,
                op="updated",
                actor="test",
                event_payload={"title": title},
            )

        landed = await asyncio.gather(
            update(first, "racer 1"), update(users[1], "b"), update(first, "racer 2"), update(users[2], "c")
        )
        assert landed[1] is True and landed[3] is True
        assert sorted([landed[0], landed[2]]) == [False, True]
        winner = "racer 1" if landed[0] else "racer 2"
        stored = await resources.read_resource(engine, tenant_id, "User", first.id)
        assert stored is not None and (stored.version, stored.doc["title"]) == (2, winner)
        async with engine.connect() as conn:
            count = (
                await conn.execute(
                    select(func.count()).where(events.c.tenant_id == tenant_id, events.c.op == "updated")
                )
            ).scalar_one()
        assert count == 3
        if engine.dialect.name == "sqlite":  # the three after the first in one transaction
            assert reader(engine).sqlite_write_counts()[0] - reader(engine).sqlite_write_counts()[1] >= 2

    run_db(database_url, work)


_DIVIDE = DirectStatement(
    text("SELECT 100 / :divisor, :call").bindparams(bindparam("divisor", type_=Integer), call_column())
)
_ADD_TENANT = DirectStatement(
    text(
        "INSERT INTO tenants (id, settings, created) VALUES (:id, '{}', :at) RETURNING id, :call"
    ).bindparams(call_column())
)


def test_a_call_that_fails_in_a_batch_fails_alone(postgresql_url: str, tenant_id: str) -> None:
    """The batch is one transaction: the failure rolls it back, then every call runs alone, so the
    failing one gets its error and the others their rows, each write taking effect exactly once."""

    async def work(engine: AsyncEngine) -> None:
        direct = reader(engine)
        got = await asyncio.gather(
            *(direct.fetch_batched(_DIVIDE, {"divisor": d}) for d in (1, 4, 0, 5)), return_exceptions=True
        )
        assert [r if isinstance(r, BaseException) else r[0][0] for r in got[:2]] == [100, 25]
        assert isinstance(got[2], Exception) and "division by zero" in str(got[2])
        assert not isinstance(got[3], BaseException) and got[3][0][0] == 20

        ids = [f"{tenant_id}-{k}" for k in (1, 2, 1, 3)]  # the second 1 violates the primary key
        written = await asyncio.gather(
            *(direct.fetch_batched(_ADD_TENANT, {"id": i, "at": AT}) for i in ids), return_exceptions=True
        )
        assert sum(isinstance(w, IntegrityError) for w in written) == 1
        async with engine.connect() as conn:
            stored = (
                await conn.execute(
                    text("SELECT id FROM tenants WHERE id LIKE :p ORDER BY id"), {"p": f"{tenant_id}-%"}
                )
            ).scalars()
            assert list(stored) == [f"{tenant_id}-1", f"{tenant_id}-2", f"{tenant_id}-3"]

    run_db(postgresql_url, work)


def test_a_statement_without_the_call_column_is_refused(postgresql_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        with pytest.raises(ValueError, match="call"):
            await reader(engine).fetch_batched(DirectStatement(select(func.now())), {})

    run_db(postgresql_url, work)
