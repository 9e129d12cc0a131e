"""The transactional outbox: events are written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.storage.tables import events


async def append_event(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    at: str,
    resource_type: str,
    resource_id: str,
    op: str,
    version: int | None,
    actor: str | None,
    payload: dict[str, Any] | None,
) -> None:
    await conn.execute(
        insert(events).values(
            tenant_id=tenant_id,
            at=at,
            resource_type=resource_type,
            resource_id=resource_id,
            op=op,
            version=version,
            actor=actor,
            payload=payload,
        )
    )
