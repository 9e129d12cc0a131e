"""storage/batch.py on real databases: the multi-row writes behind Bulk and import.

On PostgreSQL they are binary COPYs, which bypass SQLAlchemy's JSON type and its error mapping, so
what those did is checked here on both engines: documents and payloads read back as written, a
unique clash is the whole batch's 409 with nothing written, and the connection pool stays usable.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.batch import NewRow, append_events, insert_many, prepare_batch, write_batch
from provisor.storage.errors import UniqueViolation
from provisor.storage.tables import attribute_index, events, resources
from provisor.storage.tables import tenants as tenant_rows
from provisor.storage.transactions import write_transaction
from tests.scim_client import run_db

AT = "2026-01-01T00:00:00.000000Z"


def user_row(name: str, **extra: Any) -> NewRow:
    doc = {"userName": name, "name": {"givenName": "Ba\u00efbara", "familyName": 'O"Neil'}, **extra}
    return NewRow(id=str(uuid.uuid4()), doc=doc, index=[("userName", name.lower(), True)])


async def setup_tenant(engine: AsyncEngine, tenant: str) -> None:
    async with write_transaction(engine) as conn:
        await conn.execute(insert(tenant_rows).values(id=tenant, settings={}, created=AT))


def event_rows(tenant: str, stored: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "tenant_id": tenant,
            "at": AT,
            "resource_type": "User",
            "resource_id": s.id,
            "op": "created",
            "version": s.version,
            "actor": None,
            "payload": {"id": s.id, "doc": s.doc},
        }
        for s in stored
    ]


async def write(engine: AsyncEngine, tenant: str, rows: list[NewRow], how: str) -> None:
    """`how`: "transaction" (the caller's transaction, as for groups with members) or
    "write_batch" (a transaction of its own, one call in the connection's thread on SQLite)."""
    batch = prepare_batch(tenant_id=tenant, resource_type="User", at=AT, rows=rows)
    if how == "write_batch":
        await write_batch(engine, batch, event_rows(tenant, batch.stored))
        return
    async with write_transaction(engine) as conn:
        stored = await insert_many(conn, batch)
        await append_events(conn, event_rows(tenant, stored))


async def count(engine: AsyncEngine, table: Any, tenant: str) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(table.c.tenant_id == tenant)
        return int((await conn.execute(query)).scalar_one())


HOW = pytest.mark.parametrize("how", ["transaction", "write_batch"])


@HOW
def test_rows_read_back_as_written(database_url: str, tenant_id: str, how: str) -> None:
    rows = [
        user_row(f"user{i}@example.com", active=i % 2 == 0, emails=[{"value": f"{i}@x"}]) for i in range(3)
    ]
    rows.append(NewRow(id=str(uuid.uuid4()), doc={"userName": "unmanaged"}, index=[], managed=False))

    async def work(engine: AsyncEngine) -> None:
        await setup_tenant(engine, tenant_id)
        await write(engine, tenant_id, rows, how)
        async with engine.connect() as conn:
            found = {
                r.id: (r.doc, r.version, r.created, r.managed)
                for r in await conn.execute(select(resources).where(resources.c.tenant_id == tenant_id))
            }
            payloads = {
                r.resource_id: r.payload
                for r in await conn.execute(select(events).where(events.c.tenant_id == tenant_id))
            }
            index = {
                (r.resource_id, r.value_norm, bool(r.is_unique))
                for r in await conn.execute(
                    select(attribute_index).where(attribute_index.c.tenant_id == tenant_id)
                )
            }
        assert found == {row.id: (row.doc, 1, AT, row.managed) for row in rows}
        assert payloads == {row.id: {"id": row.id, "doc": row.doc} for row in rows}
        assert index == {(row.id, row.doc["userName"], True) for row in rows[:3]}

    run_db(database_url, work)


@HOW
@pytest.mark.parametrize("clash", ["with a stored user", "inside the batch"])
def test_a_unique_clash_fails_the_batch_and_writes_nothing(
    database_url: str, tenant_id: str, clash: str, how: str
) -> None:
    async def work(engine: AsyncEngine) -> None:
        await setup_tenant(engine, tenant_id)
        await write(engine, tenant_id, [user_row("taken@example.com")], how)
        batch = [user_row(f"new{i}@example.com") for i in range(5)]
        batch[3] = user_row("taken@example.com" if clash == "with a stored user" else "new1@example.com")
        with pytest.raises(UniqueViolation) as raised:  # 409 uniqueness (service/errors.py)
            await write(engine, tenant_id, batch, how)
        assert raised.value.resource_type == "User"
        assert await count(engine, resources, tenant_id) == 1
        assert await count(engine, attribute_index, tenant_id) == 1
        assert await count(engine, events, tenant_id) == 1
        # The pool's connections are still good: the next batch goes in.
        await write(engine, tenant_id, [user_row("after@example.com")], how)
        assert await count(engine, resources, tenant_id) == 2

    run_db(database_url, work)
