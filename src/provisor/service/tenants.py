"""Tenants as the HTTP layer asks about them: whether one exists, and its settings."""

from __future__ import annotations

from typing import Any

from provisor.errors import not_found
from provisor.storage import tenants as store
from provisor.storage.auth_cache import auth_write
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import Tenants
from provisor.storage.tenants import DEFAULT_TENANT
from provisor.storage.transactions import read_transaction

__all__ = ["DEFAULT_TENANT", "exists", "settings_of"]

#: Storage as the contract names it (storage/interfaces/).
_store: Tenants = store


async def exists(engine: AsyncEngine, tenant_id: str) -> bool:
    async with read_transaction(engine) as conn:
        return await _store.tenant_exists(conn, tenant_id)


async def settings_of(engine: AsyncEngine, tenant_id: str) -> dict[str, Any]:
    """A tenant's settings (storage's defaults for a tenant that does not exist)."""
    async with read_transaction(engine) as conn:
        return await _store.get_settings(conn, tenant_id)


async def update_settings(engine: AsyncEngine, tenant_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Change a tenant's settings; when this returns, every worker uses them (they are cached with
    tokens, see storage/auth_cache.py). 404 when the tenant does not exist."""
    async with auth_write(engine) as conn:
        if not await _store.tenant_exists(conn, tenant_id):
            raise not_found(f"tenant {tenant_id} not found")
        return await _store.update_settings(conn, tenant_id, changes)
