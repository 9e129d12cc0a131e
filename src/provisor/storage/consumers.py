"""Named feed consumers: durable positions, and when each acknowledged each deprovisioning.

A commit moves a consumer's position from `old` to `new` and, in the same statement set, stamps
`deprovision_acks` with the deprovisioning events in `(old, new]` it is responsible for (its tenant
scope, after its `start_seq`). Those events are found through the partial index
`ix_events_deprovision`, so a commit that passes a million events writes one row per deactivation
or deletion among them, in one `INSERT ... SELECT`, and reads nothing else. An event already
stamped keeps its first time (a forced rewind does not "un-acknowledge").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, delete, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.clock import now
from provisor.storage.event_log import latest_seq
from provisor.storage.kind import backend
from provisor.storage.tables import consumers, deprovision_acks, events

#: The events a consumer must acknowledge: a user losing access (the partial index's predicate).
DEPROVISION_OPS = ("deactivated", "deleted")


def is_deprovision(column_type: Any, column_op: Any) -> Any:
    return and_(column_type == "User", column_op.in_(DEPROVISION_OPS))


@dataclass(frozen=True)
class Consumer:
    name: str
    tenant: str | None
    seq: int
    start_seq: int
    created: str
    updated: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tenant": self.tenant,
            "seq": self.seq,
            "startSeq": self.start_seq,
            "created": self.created,
            "updated": self.updated,
        }


class PositionError(Exception):
    """A commit that cannot be applied; `status` is the HTTP status that says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _consumer(row: Any) -> Consumer:
    return Consumer(
        row["name"], row["tenant_id"], int(row["seq"]), int(row["start_seq"]), row["created"], row["updated"]
    )


async def get_consumer(conn: AsyncConnection, name: str, *, for_update: bool = False) -> Consumer | None:
    query = select(consumers).where(consumers.c.name == name)
    if for_update and backend(conn).row_locks:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return _consumer(row) if row else None


async def list_consumers(conn: AsyncConnection) -> list[Consumer]:
    rows = (await conn.execute(select(consumers).order_by(consumers.c.name))).mappings().all()
    return [_consumer(r) for r in rows]


async def delete_consumer(conn: AsyncConnection, name: str) -> bool:
    await conn.execute(delete(deprovision_acks).where(deprovision_acks.c.consumer == name))
    result = await conn.execute(delete(consumers).where(consumers.c.name == name))
    return bool(result.rowcount)


async def commit_position(
    conn: AsyncConnection, name: str, seq: int, *, tenant: str | None, force: bool
) -> Consumer:
    """Set `name`'s position to `seq` (creating the consumer, scoped to `tenant`, on first commit).

    Positions only move forward unless `force`; a position past the log's head is refused, since
    it would silently skip events not yet written.
    """
    head = await latest_seq(conn)
    if seq < 0 or seq > head:
        raise PositionError(400, f"seq {seq} is outside the log (0..{head})")
    at = now()
    current = await get_consumer(conn, name, for_update=True)
    if current is None:
        values = {
            "name": name,
            "tenant_id": tenant,
            "seq": seq,
            "start_seq": seq,
            "created": at,
            "updated": at,
        }
        # Two first commits can race (PostgreSQL): the loser finds the winner's row and goes on as
        # an ordinary commit instead of failing on the primary key.
        created = await conn.execute(backend(conn).insert(consumers).values(values).on_conflict_do_nothing())
        if created.rowcount:
            return _consumer(values)
        current = await get_consumer(conn, name, for_update=True)
        if current is None:  # created and deleted again meanwhile
            raise PositionError(409, f"consumer {name} changed concurrently; retry")
    if tenant is not None and tenant != current.tenant:
        raise PositionError(
            409, f"consumer {name} is scoped to {current.tenant or 'every tenant'}; delete it to change that"
        )
    if seq < current.seq and not force:
        raise PositionError(
            409, f"seq {seq} is behind the committed {current.seq}; pass force=true to rewind"
        )
    await conn.execute(update(consumers).where(consumers.c.name == name).values(seq=seq, updated=at))
    if seq > current.seq:
        await _stamp(conn, current, seq, at)
    return Consumer(name, current.tenant, seq, current.start_seq, current.created, at)


async def _stamp(conn: AsyncConnection, consumer: Consumer, new: int, at: str) -> None:
    """Record `at` as the acknowledgement of the deprovisioning events in (old, new]."""
    low = max(consumer.seq, consumer.start_seq)
    source = select(
        literal(consumer.name, String(200)).label("consumer"),
        events.c.seq,
        events.c.tenant_id,
        events.c.at,
        literal(at, String(32)).label("acked_at"),
    ).where(
        events.c.seq > low,
        events.c.seq <= new,
        is_deprovision(events.c.resource_type, events.c.op),
    )
    if consumer.tenant is not None:
        source = source.where(events.c.tenant_id == consumer.tenant)
    statement = (
        backend(conn)
        .insert(deprovision_acks)
        .from_select(["consumer", "event_seq", "tenant_id", "event_at", "acked_at"], source)
        .on_conflict_do_nothing()
    )
    await conn.execute(statement)


@dataclass(frozen=True)
class Deprovisioning:
    seq: int
    at: str
    resource_id: str
    op: str
    #: consumer name -> time its commit covered this event (None: not yet).
    acks: dict[str, str | None]


def _acked(consumer: Any, seq: Any) -> Any:
    """EXISTS an acknowledgement of event `seq` by `consumer` (both from the enclosing query)."""
    found = select(deprovision_acks.c.event_seq).where(
        deprovision_acks.c.consumer == consumer, deprovision_acks.c.event_seq == seq
    )
    return found.correlate_except(deprovision_acks).exists()


def _in_scope(tenant: str) -> Any:
    return or_(consumers.c.tenant_id.is_(None), consumers.c.tenant_id == tenant)


def _deprovision_query(tenant: str, since: str, before: str | None, unacknowledged: bool) -> Any:
    query = select(events.c.seq, events.c.at, events.c.resource_id, events.c.op).where(
        events.c.tenant_id == tenant,
        is_deprovision(events.c.resource_type, events.c.op),
        events.c.at >= since,
    )
    if before is not None:
        query = query.where(events.c.at < before)
    if unacknowledged:
        not_acked = ~_acked(consumers.c.name, events.c.seq)
        pending = select(consumers.c.name).where(
            _in_scope(tenant), consumers.c.start_seq < events.c.seq, not_acked
        )
        query = query.where(pending.exists())
    return query


async def count_deprovisioning(
    conn: AsyncConnection, tenant: str, *, since: str, before: str | None, unacknowledged: bool
) -> int:
    inner = _deprovision_query(tenant, since, before, unacknowledged).subquery()
    return int((await conn.execute(select(func.count()).select_from(inner))).scalar() or 0)


async def list_deprovisioning(
    conn: AsyncConnection, tenant: str, *, since: str, before: str | None, unacknowledged: bool, limit: int
) -> list[Deprovisioning]:
    """The tenant's deprovisioning events with `since <= at < before`, each with every in-scope
    consumer's acknowledgement; with `unacknowledged`, only those some consumer has not acknowledged."""
    query = _deprovision_query(tenant, since, before, unacknowledged).order_by(events.c.seq).limit(limit)
    rows = (await conn.execute(query)).all()
    if not rows:
        return []
    seqs = [int(r[0]) for r in rows]
    responsible = (
        await conn.execute(select(consumers.c.name, consumers.c.start_seq).where(_in_scope(tenant)))
    ).all()
    acked: dict[tuple[str, int], str] = {}
    for chunk in range(0, len(seqs), 1000):
        part = seqs[chunk : chunk + 1000]
        for consumer, event_seq, acked_at in await conn.execute(
            select(
                deprovision_acks.c.consumer, deprovision_acks.c.event_seq, deprovision_acks.c.acked_at
            ).where(deprovision_acks.c.event_seq.in_(part))
        ):
            acked[(consumer, int(event_seq))] = acked_at
    out = []
    for seq, at, resource_id, op in rows:
        acks = {name: acked.get((name, int(seq))) for name, start in responsible if int(start) < int(seq)}
        out.append(Deprovisioning(int(seq), at, resource_id, op, acks))
    return out


async def ack_delays(conn: AsyncConnection, tenant: str, since: str) -> dict[str, list[tuple[str, str]]]:
    """(event time, acknowledgement time) per consumer, for the tenant's events since `since`."""
    rows = await conn.execute(
        select(deprovision_acks.c.consumer, deprovision_acks.c.event_at, deprovision_acks.c.acked_at).where(
            deprovision_acks.c.tenant_id == tenant, deprovision_acks.c.event_at >= since
        )
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for consumer, event_at, acked_at in rows:
        out.setdefault(consumer, []).append((event_at, acked_at))
    return out


async def pending_counts(conn: AsyncConnection, tenant: str, older_than: str) -> dict[str, int]:
    """Per in-scope consumer: the tenant's deprovisioning events before `older_than` it has not
    acknowledged (those still in the log; pruning keeps what a consumer has not passed)."""
    query = (
        select(consumers.c.name, func.count(events.c.seq))
        .select_from(consumers)
        .join(
            events,
            and_(
                events.c.tenant_id == tenant,
                is_deprovision(events.c.resource_type, events.c.op),
                events.c.seq > consumers.c.start_seq,
                events.c.at < older_than,
            ),
        )
        .where(_in_scope(tenant))
        .where(~_acked(consumers.c.name, events.c.seq))
        .group_by(consumers.c.name)
    )
    counts = {name: 0 for (name,) in await conn.execute(select(consumers.c.name).where(_in_scope(tenant)))}
    for name, count in await conn.execute(query):
        counts[name] = int(count)
    return counts


async def lowest_position(conn: AsyncConnection) -> int | None:
    value = (await conn.execute(select(func.min(consumers.c.seq)))).scalar()
    return None if value is None else int(value)
