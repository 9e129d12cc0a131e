"""Tenants and their per-tenant settings (stored as a JSON object)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.clock import now
from provisor.storage.tables import tenants

DEFAULT_TENANT = "default"


async def ensure_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    """Create the tenant if it does not exist (idempotent, race-safe)."""
    exists = (await conn.execute(select(tenants.c.id).where(tenants.c.id == tenant_id))).first()
    if exists:
        return
    try:
        async with conn.begin_nested():
            await conn.execute(tenants.insert().values(id=tenant_id, settings={}, created=now()))
    except IntegrityError:
        pass


async def get_settings(conn: AsyncConnection, tenant_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(tenants.c.settings).where(tenants.c.id == tenant_id))).first()
    return dict(row[0]) if row else {}


async def list_tenants(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(tenants).order_by(tenants.c.id))).mappings().all()
    return [dict(r) for r in rows]
