"""Reads for directory import and export (service/transfer.py): whole chunks of resources by id,
their members, and every resource of a type in creation order.

Kept apart from the request paths: these run in chunks of up to a thousand ids inside one read
transaction, and their plans are those of bulk reads, not of single-resource lookups.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.storage import resources as store
from provisor.storage.members import list_members
from provisor.storage.resources import StoredResource
from provisor.storage.tables import resources


async def resources_by_ids(
    conn: AsyncConnection, tenant_id: str, resource_type: str, ids: Sequence[str]
) -> list[StoredResource]:
    """The stored resources of `resource_type` among `ids` (absent ones are left out), by id."""
    if not ids:
        return []
    return await store.list_resources(
        conn,
        tenant_id,
        resource_type,
        where=None,
        order_by=[resources.c.id],
        offset=0,
        limit=len(ids),
        extra_where=[resources.c.id.in_(list(ids))],
    )


async def page_by_creation(
    conn: AsyncConnection, tenant_id: str, resource_type: str, *, offset: int, limit: int
) -> list[StoredResource]:
    """One page of every resource of a type, oldest first (id breaks ties), so an export read
    page by page sees each resource once while nothing is created or deleted meanwhile."""
    order = [resources.c.created.asc(), resources.c.id.asc()]
    return await store.list_resources(
        conn, tenant_id, resource_type, where=None, order_by=order, offset=offset, limit=limit
    )


async def member_ids_of_groups(
    conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
) -> dict[str, set[str]]:
    """The member ids of each of `group_ids` (a group without members is absent)."""
    out: dict[str, set[str]] = {}
    for group_id, member_id, _type, _display in await list_members(conn, tenant_id, group_ids):
        out.setdefault(group_id, set()).add(member_id)
    return out
