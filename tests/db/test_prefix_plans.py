"""`userName sw "..."` starts from the index range whatever the planner's statistics say.

A `sw` on an indexed attribute is a range of `attribute_index` in code point order (storage/filter_sql.py,
migration 0015). Before, PostgreSQL compiled it to a `LIKE` its B-tree could not serve under the
database's linguistic collation, and with statistics from a smaller tenant (or none: a new
database before autovacuum) it walked the tenant's users in creation order testing each one: 8-13 s
at 6-8k users. This test reads the plans of the statements the service runs for
`GET /Users?filter=userName sw "..."&count=100` (the page and its count) and for the same filter
with a cursor (the console's search), with no statistics, with statistics taken at 1% of the
tenant's size, and with fresh ones, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.filter import bind, parse_filter
from provisor.schema.registry import default_registry
from provisor.service.cursor import Cursor
from provisor.storage import resources as store
from provisor.storage.filter_sql import SqlContext, indexed_prefix
from provisor.storage.keyset import keyset_condition
from provisor.storage.kind import backend_named
from provisor.storage.tables import resources as resource_rows
from tests.db.test_lookup_plans import USERS, seed
from tests.scim_client import run_db

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
TENANT = "prefix-plans"
#: user42, user420..user429: 11 of the 2,000 users.
PREFIX = "USER42"


def statements(dialect: str) -> dict[str, Select[Any]]:
    """The page, count and cursor pages of `userName sw PREFIX` as the service builds them."""
    node = bind(parse_filter(f'userName sw "{PREFIX}"'), REGISTRY, USER)
    driver = indexed_prefix(node, SqlContext(dialect, TENANT, USER))
    assert driver is not None
    key, ident = resource_rows.c.created, resource_rows.c.id
    order = [key.asc().nulls_last(), ident.asc()]
    at = "2026-01-01T00:00:00.000000Z"
    after = keyset_condition(key, ident, Cursor(True, at, "0", ""), descending=False)
    found = backend_named(dialect)
    assert found is not None
    kind = found.resources
    return {
        "probe": store._probe_query(driver),
        "page": store._list_query(TENANT, "User", [], order, 0, 100, driver, kind),
        "count": store._count_query(TENANT, "User", None, driver, kind),
        "cursor, first page": store._keyed_query(TENANT, "User", [], key, order, 101, driver, kind),
        "cursor, next page": store._keyed_query(TENANT, "User", [after], key, order, 101, driver, kind),
    }


async def explain(engine: AsyncEngine, statement: Select[Any]) -> str:
    sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = (await conn.exec_driver_sql("EXPLAIN " + sql)).all()
            return "\n".join(r[0] for r in rows)
        rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)).all()
        return "\n".join(str(r[3]) for r in rows)


def assert_driven_by_the_range(plan: str) -> None:
    """The plan reads the prefix's range of the index, never every user of the tenant."""
    assert "ix_resources_type_created" not in plan, plan  # a walk over the tenant's users
    assert "Seq Scan on resources" not in plan, plan
    assert "SCAN resources" not in plan, plan
    assert "Seq Scan on attribute_index" not in plan, plan
    lines = [line for line in plan.splitlines() if "attribute_index_lookup" in line]
    assert lines, plan
    if "Index Cond" in plan:  # PostgreSQL: the range is an index condition
        condition = plan.split("attribute_index_lookup", 1)[1].split("Index Cond:", 1)[1].split("\n")[0]
        assert "value_norm >=" in condition and "value_norm <" in condition, plan
    else:
        assert any("value_norm>" in line for line in lines), plan


@pytest.mark.parametrize("statistics", ["none", "stale", "fresh"])
def test_sw_starts_from_the_index_range_whatever_the_statistics(
    fresh_database_url: str, statistics: str
) -> None:
    async def work(engine: AsyncEngine) -> None:
        postgres = engine.dialect.name == "postgresql"
        first = USERS // 100 if statistics == "stale" else USERS
        await seed(engine, TENANT, 0, first)
        if postgres and statistics != "none":
            async with engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE resources")
                await conn.exec_driver_sql("ANALYZE attribute_index")
                await conn.commit()
        if not postgres and statistics != "none":
            async with engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE")
                await conn.commit()
        if first < USERS:
            await seed(engine, TENANT, first, USERS - first)
        for label, statement in statements(engine.dialect.name).items():
            plan = await explain(engine, statement)
            try:
                assert_driven_by_the_range(plan)
            except AssertionError:
                raise AssertionError(f"{label}:\n{plan}") from None

    run_db(fresh_database_url, work)
