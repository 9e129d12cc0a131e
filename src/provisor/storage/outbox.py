"""The transactional outbox: events are written in the same transaction as the change.

The events INSERT itself is spelled in storage/outbox_sql.py (`APPEND_EVENT`, `events_insert`),
re-exported here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.events.model import EventOp, event_row
from provisor.storage.direct import execute
from provisor.storage.outbox_sql import APPEND_EVENT, events_insert, op_literal

__all__ = ["APPEND_EVENT", "append_event", "events_insert", "op_literal"]


async def append_event(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    at: str,
    resource_type: str,
    resource_id: str,
    op: EventOp,
    version: int | None,
    actor: str | None,
    payload: dict[str, Any] | None,
) -> None:
    """One event row (events/model.py `event_row`) in `conn`'s transaction."""
    row = event_row(
        tenant_id=tenant_id,
        at=at,
        resource_type=resource_type,
        resource_id=resource_id,
        op=op,
        version=version,
        actor=actor,
        payload=payload,
    )
    await execute(conn, APPEND_EVENT, row)
