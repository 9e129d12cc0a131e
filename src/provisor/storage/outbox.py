"""The transactional outbox: events are written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.storage.direct import DirectStatement, execute
from provisor.storage.tables import events

_COLUMNS = ("tenant_id", "at", "resource_type", "resource_id", "op", "version", "actor", "payload")
#: Built once, run on the driver connection: every write appends one (storage/direct.py).
APPEND_EVENT = DirectStatement(
    insert(events).values({c: bindparam(c, type_=events.c[c].type) for c in _COLUMNS})
)


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
    await execute(
        conn,
        APPEND_EVENT,
        {
            "tenant_id": tenant_id,
            "at": at,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "op": op,
            "version": version,
            "actor": actor,
            "payload": payload,
        },
    )
