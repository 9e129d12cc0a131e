"""Transaction helpers: one transaction per write, and the write lock taken up front on SQLite.

What differs between the databases (queueing, BEGIN, aborting a COMMIT) is the database's
`WriteTransactions` (storage/postgres/transactions.py, storage/sqlite/transactions.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asyncpg.exceptions import QueryCanceledError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from provisor.budget import Budget, Commit, TimedOut, current_budget
from provisor.storage.contracts import WriteTransactions
from provisor.storage.kind import backend
from provisor.storage.statistics import note_write


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that commits on success and rolls back on any error.

    On SQLite the writers of all workers first queue on `SqliteWriterGate`, so that `BEGIN
    IMMEDIATE` finds the database free instead of sleeping in SQLite's busy handler; within a
    request, `BEGIN IMMEDIATE` waits for writers outside Provisor at most what remains of the
    request's budget. Until COMMIT is sent nothing is written, so a deadline may cancel the
    request anywhere before it; the COMMIT itself is a commit of the request's budget
    (provisor/budget.py): the deadline aborts it in the database instead, and the request learns
    whether it took effect.
    """
    kind = backend(engine).transactions
    budget = current_budget.get()
    async with kind.writers_queue(engine), engine.connect() as conn:
        conn = await kind.for_writing(conn, budget)
        transaction = await conn.begin()
        try:
            yield conn
        except BaseException:
            await transaction.rollback()
            raise
        if budget is None:
            await transaction.commit()
        else:
            await _commit_within(conn, transaction, budget, kind)
        note_write()


async def _commit_within(
    conn: AsyncConnection, transaction: AsyncTransaction, budget: Budget, kind: WriteTransactions
) -> None:
    commit = Commit()
    try:
        budget.enter(commit)
    except TimedOut:
        await transaction.rollback()
        raise
    committed = False
    try:
        await kind.abort_on_deadline(conn, commit)
        try:
            await transaction.commit()
        except DBAPIError as exc:
            if commit.aborted and isinstance(exc.orig, Exception) and _was_cancelled(exc):
                raise TimedOut(budget.limit) from exc
            raise
        committed = True
    finally:
        budget.leave(commit, committed)
    if commit.aborted:  # a late cancel request must not hit this connection's next statement
        await conn.invalidate()


def _was_cancelled(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, QueryCanceledError):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection outside any transaction, for reads that are one statement.

    Skipping BEGIN and COMMIT saves two round trips per request on PostgreSQL; one statement is
    atomic and consistent by itself on both engines.
    """
    async with engine.connect() as conn:
        yield await backend(conn).transactions.autocommit(conn)


@asynccontextmanager
async def read_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a read transaction (a consistent snapshot on both engines)."""
    async with engine.connect() as conn, conn.begin():
        yield conn
