"""A read transaction whose view of the data is exactly "every event up to seq N".

A consumer that loads a snapshot and then follows the feed from `after=N` must see each change
once. That needs the snapshot to contain the effects of every event with seq <= N and of no event
with seq > N. "The highest seq I can see" is not enough on PostgreSQL: a sequence value is taken
when the event row is inserted and becomes visible at commit, so a transaction holding seq 10 may
still be open while seq 11 is visible. A snapshot answering N = 11 would lack 10's change, and the
feed from 11 would never deliver it. How each database gets a view that is exactly "up to N" is
its `Backend.snapshot` part: storage/postgres/snapshot.py (wait out the writers holding a seq
under a lock on `events`) and storage/sqlite/snapshot.py (its single writer makes it free).

Pages are then read, keyset on id, in the same transaction: the view is still the one the seq was
read in. A write that changes data without appending an event does not exist on these paths
(every accepted change writes its event in its own transaction, docs/events.md).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.event_log import latest_seq
from provisor.storage.kind import backend
from provisor.storage.resources import StoredResource, list_resources
from provisor.storage.tables import resources


def snapshot_transaction(engine: AsyncEngine) -> AbstractAsyncContextManager[tuple[AsyncConnection, int]]:
    """A connection inside a read transaction, and the seq N its view is consistent with."""
    return backend(engine).snapshot.consistent_view(engine, latest_seq)


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
    may succeed, and the caller should say so rather than fail the request as a fault (PostgreSQL's
    lock timeout, storage/postgres/snapshot.py `LOCK_TIMEOUT`)."""
    return isinstance(error, DBAPIError) and "lock timeout" in str(error).lower()
