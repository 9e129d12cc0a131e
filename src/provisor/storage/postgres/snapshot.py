"""PostgreSQL's consistent snapshot view (`storage.contracts.SnapshotView`).

Every write that appends an event holds `ROW EXCLUSIVE` on `events` from that insert to its commit
(any INSERT takes it, before the sequence is read). The view

1. begins a REPEATABLE READ transaction (one view of the data for every later statement) and a
   savepoint;
2. takes `LOCK TABLE events IN SHARE MODE`, which conflicts with `ROW EXCLUSIVE`: it waits until
   every transaction that has appended an event has committed or rolled back, and holds back new
   event inserts (so no new seq is drawn) while held;
3. reads `max(seq)` = N. This first query fixes the transaction's view: every seq drawn so far
   belongs to a finished transaction, so every committed event <= N is visible, and nothing in the
   view can come from a transaction that draws its seq later (that draw happens after step 4, so its
   seq is > N and its commit after this view was taken);
4. rolls back to the savepoint, which releases the lock (the view stays: it belongs to the
   transaction, not the savepoint). Writers were held for the lock wait and two statements.

The transaction ends with a rollback however the reader leaves (storage/read_only.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.read_only import read_only_transaction

#: How long the snapshot waits for in-flight writers before giving up (they queue behind it).
LOCK_TIMEOUT = "5s"


@asynccontextmanager
async def consistent_view(
    engine: AsyncEngine, read_head: Callable[[AsyncConnection], Awaitable[int]]
) -> AsyncIterator[tuple[AsyncConnection, int]]:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with read_only_transaction(conn):
            savepoint = await conn.begin_nested()
            await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            await conn.execute(text("LOCK TABLE events IN SHARE MODE"))
            seq = await read_head(conn)
            await savepoint.rollback()
            yield conn, seq
