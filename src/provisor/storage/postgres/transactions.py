"""PostgreSQL's write transactions (contracts.py `WriteTransactions`): no queue before BEGIN, and a
COMMIT past its deadline cancelled in the database (provisor/budget.py)."""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.budget import Budget, Commit
from provisor.storage.postgres.driver import cancel_statement


def writers_queue(engine: AsyncEngine) -> AbstractAsyncContextManager[Any]:
    """None: PostgreSQL's writers lock rows, not the database."""
    return contextlib.nullcontext()


async def for_writing(conn: AsyncConnection, budget: Budget | None) -> AsyncConnection:
    # The option is SQLite's (storage/sqlite/engine.py `_begin`); set on both, so that a connection's
    # options do not depend on the database.
    return await conn.execution_options(sqlite_immediate=True)


async def abort_on_deadline(conn: AsyncConnection, commit: Commit) -> None:
    driver = (await conn.get_raw_connection()).driver_connection
    commit.attach(lambda: cancel_statement(driver, commit))


async def autocommit(conn: AsyncConnection) -> AsyncConnection:
    """Each statement its own transaction: no BEGIN and COMMIT round trips."""
    return await conn.execution_options(isolation_level="AUTOCOMMIT")
