"""Reading and pruning the outbox in commit-safe order.

On PostgreSQL a sequence value is taken at insert time but becomes visible at commit, so a reader
can see seq 11 before seq 10 commits. A reader that then moved its cursor past 10 would lose it.
Readers therefore stop before the first missing seq ("gap") unless the event after the gap is older
than `gap_grace` seconds (then the gap is taken to be a rolled-back transaction). SQLite serialises
writers and reuses max(seq)+1, so it has no such gaps and no grace is applied there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.clock import format_instant
from provisor.events.model import Event
from provisor.storage.kind import backend
from provisor.storage.log_pruning import PRUNE_BATCH, key_range, prune_batch
from provisor.storage.tables import consumers, deprovision_acks, events, webhook_deliveries
from provisor.storage.transactions import read_transaction, write_transaction

#: How long a gap in seq may stay open before readers skip it (PostgreSQL only).
DEFAULT_GAP_GRACE_SECONDS = 10.0
#: How many seqs one read examines to find the commit-safe horizon.
SCAN_WINDOW = 1000


@dataclass(frozen=True)
class EventPage:
    events: list[Event]
    #: The cursor to pass as `after` next time: everything up to it was examined.
    next: int


@dataclass(frozen=True)
class EventFilter:
    tenant: str | None = None
    resource_type: str | None = None
    ops: frozenset[str] | None = None


async def safe_horizon(
    conn: AsyncConnection, after: int, *, gap_grace: float, window: int = SCAN_WINDOW
) -> int:
    """The highest seq > `after` up to which every event is committed and visible (or `after`)."""
    rows = (
        await conn.execute(
            select(events.c.seq, events.c.at).where(events.c.seq > after).order_by(events.c.seq).limit(window)
        )
    ).all()
    if not backend(conn).seq_gaps:
        return int(rows[-1][0]) if rows else after
    settled_before = format_instant(datetime.now(UTC) - timedelta(seconds=gap_grace))
    horizon = after
    for seq, at in rows:
        if int(seq) != horizon + 1 and at > settled_before:
            break
        horizon = int(seq)
    return horizon


async def read_events(
    conn: AsyncConnection,
    after: int,
    limit: int,
    where: EventFilter | None = None,
    *,
    gap_grace: float = DEFAULT_GAP_GRACE_SECONDS,
) -> EventPage:
    """Up to `limit` events with seq > `after` matching `where`, in seq order, never past a gap."""
    horizon = await safe_horizon(conn, after, gap_grace=gap_grace, window=max(SCAN_WINDOW, limit))
    if horizon <= after:
        return EventPage([], after)
    query = select(events).where(events.c.seq > after, events.c.seq <= horizon)
    if where is not None:
        if where.tenant is not None:
            query = query.where(events.c.tenant_id == where.tenant)
        if where.resource_type is not None:
            query = query.where(func.lower(events.c.resource_type) == where.resource_type.lower())
        if where.ops is not None:
            query = query.where(events.c.op.in_(sorted(where.ops)))
    rows = (await conn.execute(query.order_by(events.c.seq).limit(limit))).mappings().all()
    found = [Event.from_row(r) for r in rows]
    next_seq = found[-1].seq if len(found) == limit else horizon
    return EventPage(found, next_seq)


async def latest_seq(conn: AsyncConnection) -> int:
    value = (await conn.execute(select(func.max(events.c.seq)))).scalar()
    return int(value or 0)


async def prune_events(engine: AsyncEngine, older_than: str, *, batch: int = PRUNE_BATCH) -> int:
    """Delete events with `at` < `older_than`, except those a delivery or a consumer still needs,
    and the newest; how many.

    Events with pending or dead deliveries stay (they may still be sent or redriven), and so do the
    events after the lowest position a named consumer committed (it resumes from there; delete a
    consumer that is gone for good). The newest event always stays: SQLite assigns max(seq)+1, so
    deleting it would let a seq be reused. The delivered deliveries of the events deleted go with
    them, and deprovisioning acknowledgements of events older than the cutoff.

    The events go in batches of `batch` seqs, oldest first, each its own transaction
    (storage/log_pruning.py: plans that hold without statistics, and writers never wait long).
    """
    async with read_transaction(engine) as conn:
        newest = await latest_seq(conn)
        lowest = (await conn.execute(select(func.min(consumers.c.seq)))).scalar()
    keep_from = newest if lowest is None else min(newest, int(lowest) + 1)
    deleted, after = 0, 0
    while True:
        async with write_transaction(engine) as conn:
            done = await prune_batch(
                conn,
                events,
                events.c.seq,
                events.c.at,
                older_than,
                after=after,
                below=keep_from,
                keep=_owed,
                limit=batch,
            )
            if done.span is not None:
                await _drop_delivered(conn, *done.span)
        deleted, after = deleted + done.deleted, done.last
        if done.done:
            break
    async with write_transaction(engine) as conn:
        await conn.execute(delete(deprovision_acks).where(deprovision_acks.c.event_at < older_than))
    return deleted


async def _owed(conn: AsyncConnection, first: int, last: int) -> list[int]:
    """The events in `first..last` with a delivery not yet made (pending, or dead and redrivable)."""
    seq = webhook_deliveries.c.event_seq
    query = (
        select(seq).where(key_range(seq, first, last), webhook_deliveries.c.state != "delivered").distinct()
    )
    return [int(s) for s in (await conn.execute(query)).scalars()]


async def _drop_delivered(conn: AsyncConnection, first: int, last: int) -> None:
    """The delivered deliveries of the events in `first..last` that are gone. Both reads are ranges
    of an index (the events' key, the deliveries' `event_seq`), not a join over either table."""
    seq = webhook_deliveries.c.event_seq
    left = select(events.c.seq).where(key_range(events.c.seq, first, last))
    remaining = [int(s) for s in (await conn.execute(left)).scalars()]
    condition = and_(key_range(seq, first, last), webhook_deliveries.c.state == "delivered")
    if remaining:
        condition = and_(condition, seq.not_in(remaining))
    await conn.execute(delete(webhook_deliveries).where(condition))
