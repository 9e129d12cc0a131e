"""SQLite's write transactions (contracts.py `WriteTransactions`): writers queue on the writers'
gate (storage/sqlite/gate.py), then take the write lock up front with `BEGIN IMMEDIATE`."""

from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.budget import Budget, Commit
from provisor.storage.sqlite.driver import SQLITE_BUSY_MS
from provisor.storage.sqlite.gate import writer_gate


def writers_queue(engine: AsyncEngine) -> AbstractAsyncContextManager[Any]:
    """The writers' gate, so that `BEGIN IMMEDIATE` finds the database free instead of sleeping in
    SQLite's busy handler (none for an in-memory database: one connection, nothing to queue for)."""
    gate = writer_gate(engine)
    return gate if gate is not None else contextlib.nullcontext()


async def for_writing(conn: AsyncConnection, budget: Budget | None) -> AsyncConnection:
    """`BEGIN IMMEDIATE`, waiting for writers outside Provisor at most what remains of `budget`."""
    busy = budget.busy_ms(SQLITE_BUSY_MS) if budget is not None else SQLITE_BUSY_MS
    return await conn.execution_options(sqlite_immediate=True, provisor_busy_ms=busy)


async def abort_on_deadline(conn: AsyncConnection, commit: Commit) -> None:
    """Nothing: a local COMMIT is not cancelled (the busy timeout bounded the wait for the lock)."""


async def autocommit(conn: AsyncConnection) -> AsyncConnection:
    """No BEGIN at all (storage/sqlite/engine.py `_begin` skips it)."""
    return await conn.execution_options(provisor_autocommit=True)
