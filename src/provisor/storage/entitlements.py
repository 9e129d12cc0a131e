"""The entitlement catalogue's rows (docs/entitlements.md): define, remove, page through, read one.

A catalogue is small (tens to a few thousand entries per tenant and type) and changes rarely; pages
are read in `id` order through the primary key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.storage.kind import backend
from provisor.storage.tables import entitlements

_c = entitlements.c


@dataclass(frozen=True)
class CatalogueEntry:
    resource_type: str
    id: str
    display_name: str
    type: str | None
    description: str | None
    created: str
    last_modified: str


def _entry(row: Any) -> CatalogueEntry:
    return CatalogueEntry(
        row.resource_type, row.id, row.display_name, row.type, row.description, row.created, row.last_modified
    )


def _where(tenant_id: str, resource_type: str) -> Any:
    return (_c.tenant_id == tenant_id) & (_c.resource_type == resource_type)


async def define(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    resource_type: str,
    entry_id: str,
    display_name: str,
    type_: str | None,
    description: str | None,
    at: str,
) -> bool:
    """Insert or replace one entry; True when it was new."""
    existed = await get(conn, tenant_id, resource_type, entry_id) is not None
    values = {
        "tenant_id": tenant_id,
        "resource_type": resource_type,
        "id": entry_id,
        "display_name": display_name,
        "type": type_,
        "description": description,
        "created": at,
        "last_modified": at,
    }
    statement = backend(conn).insert(entitlements).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[_c.tenant_id, _c.resource_type, _c.id],
        set_={
            "display_name": display_name,
            "type": type_,
            "description": description,
            "last_modified": at,
        },
    )
    await conn.execute(statement)
    return not existed


async def remove(conn: AsyncConnection, tenant_id: str, resource_type: str, entry_id: str) -> bool:
    """Delete one entry; False when there was none."""
    result = await conn.execute(
        delete(entitlements).where(_where(tenant_id, resource_type), _c.id == entry_id)
    )
    return bool(result.rowcount)


async def get(
    conn: AsyncConnection, tenant_id: str, resource_type: str, entry_id: str
) -> CatalogueEntry | None:
    row = (
        await conn.execute(select(entitlements).where(_where(tenant_id, resource_type), _c.id == entry_id))
    ).first()
    return None if row is None else _entry(row)


async def count(conn: AsyncConnection, tenant_id: str, resource_type: str) -> int:
    query = select(func.count()).select_from(entitlements).where(_where(tenant_id, resource_type))
    return int((await conn.execute(query)).scalar_one())


async def page(
    conn: AsyncConnection, tenant_id: str, resource_type: str, offset: int, limit: int | None
) -> list[CatalogueEntry]:
    """Entries in id order; `limit` None reads them all (a filtered list filters in Python)."""
    query = select(entitlements).where(_where(tenant_id, resource_type)).order_by(_c.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [_entry(row) for row in await conn.execute(query)]
