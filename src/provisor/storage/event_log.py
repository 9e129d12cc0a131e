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

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.clock import format_instant
from provisor.events.model import Event
from provisor.storage.kind import backend
from provisor.storage.tables import consumers, deprovision_acks, events, webhook_deliveries

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


async def prune_events(conn: AsyncConnection, older_than: str) -> int:
    """Delete events with `at` < `older_than`, except those a delivery or a consumer still needs,
    and the newest.

    Events with pending or dead deliveries stay (they may still be sent or redriven), and so do the
    events after the lowest position a named consumer committed (it resumes from there; delete a
    consumer that is gone for good). The newest event always stays: SQLite assigns max(seq)+1, so
    deleting it would let a seq be reused. Deprovisioning acknowledgements of events older than
    the cutoff go with them.
    """
    newest = await latest_seq(conn)
    lowest = (await conn.execute(select(func.min(consumers.c.seq)))).scalar()
    keep_from = newest if lowest is None else min(newest, int(lowest) + 1)
    undelivered = exists().where(
        and_(webhook_deliveries.c.event_seq == events.c.seq, webhook_deliveries.c.state != "delivered")
    )
    result = await conn.execute(
        delete(events).where(events.c.at < older_than, events.c.seq < keep_from, ~undelivered)
    )
    await conn.execute(delete(deprovision_acks).where(deprovision_acks.c.event_at < older_than))
    remaining = select(events.c.seq).where(events.c.seq == webhook_deliveries.c.event_seq)
    await conn.execute(
        delete(webhook_deliveries).where(webhook_deliveries.c.state == "delivered", ~remaining.exists())
    )
    return int(result.rowcount or 0)
