"""A read transaction whose view of the data is exactly "every event up to seq N".

A consumer that loads a snapshot and then follows the feed from `after=N` must see each change
once. That needs the snapshot to contain the effects of every event with seq <= N and of no event
with seq > N. "The highest seq I can see" is not enough on PostgreSQL: a sequence value is taken
when the event row is inserted and becomes visible at commit, so a transaction holding seq 10 may
still be open while seq 11 is visible. A snapshot answering N = 11 would lack 10's change, and the
feed from 11 would never deliver it.

PostgreSQL. Every write that appends an event holds `ROW EXCLUSIVE` on `events` from that insert to
its commit (any INSERT takes it, before the sequence is read). The snapshot

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

Pages are then read, keyset on id, in the same transaction: the view is still the one of step 3.
A write that changes data without appending an event does not exist on these paths (every
accepted change writes its event in its own transaction, docs/events.md).

SQLite. Writers are serialised by the database lock and assign seq = max(seq)+1 inside it, so the
first read of a read transaction (WAL mode) sees a committed prefix of the log: N = max(seq).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.event_log import latest_seq
from provisor.storage.resources import StoredResource, list_resources
from provisor.storage.tables import resources

#: How long the snapshot waits for in-flight writers before giving up (they queue behind it).
LOCK_TIMEOUT = "5s"


@asynccontextmanager
async def snapshot_transaction(engine: AsyncEngine) -> AsyncIterator[tuple[AsyncConnection, int]]:
    """A connection inside a read transaction, and the seq N its view is consistent with."""
    async with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            async with conn.begin():
                yield conn, await latest_seq(conn)
            return
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            savepoint = await conn.begin_nested()
            await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            await conn.execute(text("LOCK TABLE events IN SHARE MODE"))
            seq = await latest_seq(conn)
            await savepoint.rollback()
            yield conn, seq


async def page_after(
    conn: AsyncConnection, tenant_id: str, resource_type: str, after_id: str | None, limit: int
) -> list[StoredResource]:
    """The next `limit` resources of a type by id (the primary key's order), after `after_id`."""
    extra = [resources.c.id > after_id] if after_id is not None else [resources.c.id >= ""]
    return await list_resources(
        conn,
        tenant_id,
        resource_type,
        where=None,
        order_by=[resources.c.id],
        offset=0,
        limit=limit,
        extra_where=extra,
    )


def is_lock_timeout(error: BaseException) -> bool:
    """Did opening the snapshot give up waiting for writers (`LOCK_TIMEOUT`)? Then a retry later
    may succeed, and the caller should say so rather than fail the request as a fault."""
    return isinstance(error, DBAPIError) and "lock timeout" in str(error).lower()
