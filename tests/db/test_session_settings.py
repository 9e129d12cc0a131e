"""The settings every PostgreSQL connection of Provisor's starts with, read back from the server.

Parallel query is off per connection: a worker's requests run side by side already, and a
parallel plan makes one request take several of the machine's cores. Measured (docs/performance.md,
"Parallel query"): once `resources` had statistics, the count of a list page of 100,000 users
among 1.1M rows became a parallel sequential scan of the whole table (114 ms and three processes,
against 38 ms for the bitmap scan of the tenant's rows), and 16 concurrent list requests fell from
39 to 6 per second. `jit` is off for the same kind of reason: short statements.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.direct import DirectStatement, reader
from tests.scim_client import run_db

SHOW_PARALLEL = "SHOW max_parallel_workers_per_gather"
SHOW_JIT = "SHOW jit"


def test_sqlalchemy_connections_run_without_parallel_query_or_jit(postgresql_url: str) -> None:
    async def read(engine: AsyncEngine) -> tuple[str, str]:
        async with engine.connect() as conn:
            parallel = (await conn.execute(text(SHOW_PARALLEL))).scalar_one()
            jit = (await conn.execute(text(SHOW_JIT))).scalar_one()
        return parallel, jit

    assert run_db(postgresql_url, read) == ("0", "off")


def test_direct_driver_connections_run_without_parallel_query(postgresql_url: str) -> None:
    statement = DirectStatement(text(SHOW_PARALLEL).columns())

    async def read(engine: AsyncEngine) -> list[object]:
        return [row[0] for row in await reader(engine).fetch(statement, {})]

    assert run_db(postgresql_url, read) == ["0"]
