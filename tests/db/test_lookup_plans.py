"""The `attr eq "value"` lookups (IdP existence checks) stay index lookups when statistics lag.

SQLite never gathers statistics by itself, and PostgreSQL's are those of the last ANALYZE: during
an initial sync into a new deployment they describe a far smaller tenant. Left to choose, both
planners then walk the tenant's resources in creation order and test each one against the index,
so every lookup reads every user. The statements fix the join order (storage/resources.py
`_matching`); this test reads the plans on SQLite without statistics and on PostgreSQL with
statistics taken at 1% of the tenant's size.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage import resources
from provisor.storage.direct import reader
from provisor.storage.kind import backend
from provisor.storage.tables import attribute_index
from provisor.storage.tables import resources as resource_rows
from tests.scim_client import run_db

AT = "2026-01-01T00:00:00.000000Z"
USERS = 2000


async def seed(engine: AsyncEngine, tenant: str, first: int, count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with engine.begin() as conn:
        await conn.execute(
            insert(resource_rows),
            [
                {
                    "tenant_id": tenant,
                    "id": rid,
                    "resource_type": "User",
                    "version": 1,
                    "created": AT,
                    "last_modified": AT,
                    "doc": {"userName": f"user{n}"},
                }
                for n, rid in enumerate(ids, first)
            ],
        )
        await conn.execute(
            insert(attribute_index),
            [
                {
                    "tenant_id": tenant,
                    "resource_type": "User",
                    "attr": "userName",
                    "value_norm": f"user{n}",
                    "resource_id": rid,
                    "is_unique": True,
                }
                for n, rid in enumerate(ids, first)
            ],
        )
    return ids


async def plan(engine: AsyncEngine, statement: Any, params: dict[str, Any]) -> str:
    compiled = statement.compiled(engine.dialect)
    args = compiled.args(params)
    raw = await reader(engine)._connection()
    try:
        driver: Any = raw.driver_connection
        if engine.dialect.name == "postgresql":
            rows = await driver.fetch("EXPLAIN " + compiled.sql, *args)
            return "\n".join(r[0] for r in rows)
        rows = await driver.execute_fetchall("EXPLAIN QUERY PLAN " + compiled.sql, args)
        return "\n".join(str(r[3]) for r in rows)
    finally:
        await reader(engine)._release(raw)


def test_indexed_lookups_start_from_the_index_row_when_statistics_lag(fresh_database_url: str) -> None:
    tenant = "plans"

    async def work(engine: AsyncEngine) -> None:
        ids = await seed(engine, tenant, 0, USERS // 100)
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE resources")
                await conn.exec_driver_sql("ANALYZE attribute_index")
        ids += await seed(engine, tenant, len(ids), USERS - len(ids))
        params = {
            "tenant_id": tenant,
            "resource_type": "User",
            "attr": "userName",
            "value_norm": "user42",
            "offset": 0,
            "limit": 100,
        }
        kind = backend(engine).resources
        for statement in (
            kind.LIST_BY_INDEXED_VALUE,
            kind.COUNT_BY_INDEXED_VALUE,
            kind.LIST_BY_INDEXED_VALUE_WITH_GROUPS,
        ):
            text = await plan(engine, statement, params)
            assert "ix_resources_type_created" not in text, text  # no walk over the tenant's users
            assert "ix_attribute_index_lookup" in text or "ux_attribute_index_unique" in text, text
        found = await resources.list_by_indexed_value(
            engine, tenant, "User", "userName", "user42", offset=0, limit=100
        )
        assert [r.id for r in found] == [ids[42]]
        assert await resources.count_by_indexed_value(engine, tenant, "User", "userName", "user42") == 1

    run_db(fresh_database_url, work)
