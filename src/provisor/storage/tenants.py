"""Tenants and their per-tenant settings (stored as a JSON object)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.clock import now
from provisor.storage.direct import DirectStatement, reader
from provisor.storage.tables import (
    attribute_index,
    consumers,
    deprovision_acks,
    entitlements,
    events,
    group_members,
    rate_buckets,
    request_log,
    resources,
    role_jobs,
    role_mappings,
    setup_links,
    tenants,
    tokens,
    tombstones,
    unknown_attributes,
    webhook_deliveries,
    webhooks,
)
from provisor.tenant_names import check_tenant_name

DEFAULT_TENANT = "default"


async def ensure_tenant(conn: AsyncConnection, tenant_id: str) -> bool:
    """Create the tenant if it does not exist (idempotent, race-safe); True if this call created it.

    The name must follow the rule of `provisor.tenant_names` (InvalidTenantName otherwise). Only
    explicit requests create tenants (`provisor tenant create`, `--create-tenant`, the default
    tenant at start-up); everything else checks `tenant_exists` and refuses an unknown name.
    """
    exists = (await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id))).first()
    if exists:
        return False
    check_tenant_name(tenant_id)
    try:
        async with conn.begin_nested():
            await conn.execute(tenants.insert().values(id=tenant_id, settings={}, created=now()))
    except IntegrityError:
        return False
    return True


async def get_settings(conn: AsyncConnection, tenant_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(tenants.c.settings).where(tenants.c.id == tenant_id))).first()
    return dict(row[0]) if row else {}


_SETTINGS = DirectStatement(
    select(tenants.c.settings).where(tenants.c.id == bindparam("tenant_id")), by_key=True
)


async def read_settings(engine: AsyncEngine, tenant_id: str) -> dict[str, Any]:
    """`get_settings` outside any transaction, for the per-request path."""
    rows = await reader(engine).fetch(_SETTINGS, {"tenant_id": tenant_id})
    return dict(rows[0][0]) if rows else {}


async def list_tenants(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(tenants).order_by(tenants.c.id))).mappings().all()
    return [dict(r) for r in rows]


async def tenant_exists(conn: AsyncConnection, tenant_id: str) -> bool:
    return (await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id))).first() is not None


async def update_settings(conn: AsyncConnection, tenant_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into the tenant's settings (a None value removes the key); return the result."""
    merged = await get_settings(conn, tenant_id)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    await conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(settings=merged))
    return merged


async def count_resources(conn: AsyncConnection, tenant_id: str) -> int:
    query = select(func.count()).select_from(resources).where(resources.c.tenant_id == tenant_id)
    return int((await conn.execute(query)).scalar_one())


async def delete_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    """Delete the tenant and everything it owns: resources with their membership and index rows,
    events, tokens, webhooks with their deliveries, request log, rate bucket, entitlement catalogue,
    setup links, tombstones, role mappings and jobs, and the consumers scoped to it with their
    acknowledgements."""
    await conn.execute(
        delete(webhook_deliveries).where(
            webhook_deliveries.c.webhook_id.in_(
                select(webhooks.c.id).where(webhooks.c.tenant_id == tenant_id)
            )
        )
    )
    for table in (
        group_members,
        attribute_index,
        resources,
        events,
        tokens,
        webhooks,
        request_log,
        unknown_attributes,
        rate_buckets,
        setup_links,
        deprovision_acks,
        consumers,
        entitlements,
        tombstones,
        role_mappings,
        role_jobs,
    ):
        await conn.execute(delete(table).where(table.c.tenant_id == tenant_id))
    await conn.execute(delete(tenants).where(tenants.c.id == tenant_id))
