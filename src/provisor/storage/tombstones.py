"""Tombstones: what a `tombstone` delete keeps of a resource, and their purge (docs/delete-policy.md).

A tombstone is a row of its own table, not a flagged row of `resources`, so that no read path has
to exclude it: a buried resource is gone from SCIM exactly as after a hard delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.clock import now
from provisor.events.model import EventOp
from provisor.storage.kind import backend
from provisor.storage.outbox import append_event
from provisor.storage.tables import tombstones
from provisor.storage.transactions import write_transaction

#: Tombstones purged per transaction: a backlog (a bulk deprovisioning a month ago) is purged in
#: short transactions that never hold the writer for long.
PURGE_BATCH = 200


@dataclass(frozen=True)
class Tombstone:
    id: str
    resource_type: str
    version: int
    created: str
    deleted_at: str
    doc: dict[str, Any]
    groups: list[str]


_COLUMNS = (
    tombstones.c.id,
    tombstones.c.resource_type,
    tombstones.c.version,
    tombstones.c.created,
    tombstones.c.deleted_at,
    tombstones.c.doc,
    tombstones.c.groups,
)


async def bury(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    tombstone: Tombstone,
    purge_after: str,
    external_id: str | None,
    name_norm: str | None,
) -> None:
    """Keep `tombstone` until `purge_after`; the caller deletes the resource in the same transaction."""
    await conn.execute(
        insert(tombstones).values(
            tenant_id=tenant_id,
            id=tombstone.id,
            resource_type=tombstone.resource_type,
            version=tombstone.version,
            created=tombstone.created,
            deleted_at=tombstone.deleted_at,
            purge_after=purge_after,
            external_id=external_id,
            name_norm=name_norm,
            doc=tombstone.doc,
            groups=tombstone.groups,
        )
    )


def _match(
    tenant_id: str, resource_type: str, external_id: str | None, name_norm: str | None, at: str
) -> Select[Any] | None:
    """The newest unexpired tombstone by `external_id` when given, else by `name_norm` (indexed)."""
    if external_id is not None:
        key = tombstones.c.external_id == external_id
    elif name_norm is not None:
        key = tombstones.c.name_norm == name_norm
    else:
        return None
    return (
        select(*_COLUMNS)
        .where(
            tombstones.c.tenant_id == tenant_id,
            tombstones.c.resource_type == resource_type,
            key,
            tombstones.c.purge_after > at,
        )
        .order_by(tombstones.c.deleted_at.desc())
        .limit(1)
    )


async def has_match(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    resource_type: str,
    external_id: str | None,
    name_norm: str | None,
    at: str,
) -> bool:
    """Whether `take_match` would find one: a read, so that a POST with nothing to restore does not
    take the writer (SQLite) for it."""
    query = _match(tenant_id, resource_type, external_id, name_norm, at)
    return query is not None and (await conn.execute(query)).first() is not None


async def take_match(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    resource_type: str,
    external_id: str | None,
    name_norm: str | None,
    at: str,
) -> Tombstone | None:
    """Remove and return the newest unexpired tombstone matching `external_id` (when given) or else
    `name_norm`; None when there is none. Two concurrent POSTs of the same account: the row lock
    (PostgreSQL) or the single writer (SQLite) lets one restore it, the other sees none."""
    query = _match(tenant_id, resource_type, external_id, name_norm, at)
    if query is None:
        return None
    if backend(conn).row_locks:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    removed = await conn.execute(
        delete(tombstones).where(tombstones.c.tenant_id == tenant_id, tombstones.c.id == row[0])
    )
    if not removed.rowcount:
        return None
    return Tombstone(row[0], row[1], row[2], row[3], row[4], row[5], list(row[6] or []))


async def purge_due(conn: AsyncConnection, at: str, limit: int) -> tuple[int, int]:
    """Delete up to `limit` tombstones whose retention ended before `at`, each with a `purged`
    event in this transaction; returns how many were due (fewer than `limit`: nothing more is)
    and how many this call purged."""
    due = (
        await conn.execute(
            select(tombstones.c.tenant_id, tombstones.c.id, tombstones.c.resource_type, tombstones.c.version)
            .where(tombstones.c.purge_after <= at)
            .order_by(tombstones.c.purge_after)
            .limit(limit)
        )
    ).all()
    purged = 0
    for tenant_id, resource_id, resource_type, version in due:
        removed = await conn.execute(
            delete(tombstones).where(tombstones.c.tenant_id == tenant_id, tombstones.c.id == resource_id)
        )
        if not removed.rowcount:  # another serving process purged (or a POST restored) it meanwhile
            continue
        await append_event(
            conn,
            tenant_id=tenant_id,
            at=at,
            resource_type=resource_type,
            resource_id=resource_id,
            op=EventOp.PURGED,
            version=version,
            actor=None,
            payload=None,
        )
        purged += 1
    return len(due), purged


async def purge_expired(engine: AsyncEngine, at: str | None = None, *, batch: int = PURGE_BATCH) -> int:
    """Purge every tombstone expired at `at` (default now), `batch` per transaction; returns how many."""
    at = now() if at is None else at
    total = 0
    while True:
        async with write_transaction(engine) as conn:
            due, purged = await purge_due(conn, at, batch)
        total += purged
        if due < batch:
            return total


async def list_tombstones(conn: AsyncConnection, tenant_id: str) -> list[tuple[str, str, str, str]]:
    """(id, resource type, deleted at, purge after) of a tenant's tombstones, oldest first."""
    rows = await conn.execute(
        select(tombstones.c.id, tombstones.c.resource_type, tombstones.c.deleted_at, tombstones.c.purge_after)
        .where(tombstones.c.tenant_id == tenant_id)
        .order_by(tombstones.c.deleted_at)
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]
