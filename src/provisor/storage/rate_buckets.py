"""Per-tenant token buckets in the database, so every worker process shares one budget.

One statement per admitted-or-refused request: an upsert whose refill arithmetic runs in SQL on
the row's current values, and RETURNING reads back the new balance and the decision. PostgreSQL
serialises concurrent updates of one row (the second waits for the first's row lock and then sees
its result); SQLite runs it inside the write lock (`BEGIN IMMEDIATE`). No read-modify-write races.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, literal
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.storage.kind import backend
from provisor.storage.tables import rate_buckets


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: The balance after this request (below 1 when refused).
    tokens: float


def _refill(rate: float, burst: float, at: float) -> ColumnElement[Any]:
    """min(burst, tokens + max(0, at - updated_at) * rate), on the row being updated."""
    elapsed = case(
        (rate_buckets.c.updated_at < literal(at), literal(at) - rate_buckets.c.updated_at), else_=literal(0.0)
    )
    grown = rate_buckets.c.tokens + elapsed * literal(rate)
    return case((grown > literal(burst), literal(burst)), else_=grown)


async def take(conn: AsyncConnection, tenant_id: str, *, rate: float, burst: float, at: float) -> Decision:
    """Take one token from `tenant_id`'s bucket (created full on first use) if one is available."""
    refill = _refill(rate, burst, at)
    enough = refill >= literal(1.0)
    statement = (
        backend(conn)
        .insert(rate_buckets)
        .values(tenant_id=tenant_id, tokens=burst - 1.0, updated_at=at, allowed=True)
        .on_conflict_do_update(
            index_elements=[rate_buckets.c.tenant_id],
            set_={
                "tokens": case((enough, refill - literal(1.0)), else_=refill),
                "allowed": enough,
                "updated_at": case(
                    (rate_buckets.c.updated_at < literal(at), literal(at)), else_=rate_buckets.c.updated_at
                ),
            },
        )
        .returning(rate_buckets.c.tokens, rate_buckets.c.allowed)
    )
    row = (await conn.execute(statement)).one()
    return Decision(allowed=bool(row.allowed), tokens=float(row.tokens))
