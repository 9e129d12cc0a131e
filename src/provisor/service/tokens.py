"""Tokens as the console manages them: create, revoke, and the lookup of a secret."""

from __future__ import annotations

from typing import Any

from provisor.storage import tenants as tenant_store
from provisor.storage import tokens as store
from provisor.storage.auth_cache import auth_write
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import Tenants, Tokens
from provisor.storage.tokens import TokenInfo
from provisor.storage.transactions import write_transaction

__all__ = ["TokenInfo", "UnknownTenant", "create", "find_active", "revoke"]

#: Storage as the contract names it (storage/interfaces/).
_store: Tokens = store
_tenants: Tenants = tenant_store


class UnknownTenant(LookupError):
    """A SCIM token was asked for a tenant that does not exist (tenants are made on purpose)."""


async def create(
    engine: AsyncEngine, *, tenant_id: str | None, name: str, kind: str, expires_at: str | None
) -> tuple[TokenInfo, str]:
    """A new token and its secret (shown once, stored as a hash). `tenant_id` is None for admin
    tokens; for a SCIM token the tenant must exist (`UnknownTenant`)."""
    async with write_transaction(engine) as conn:
        if tenant_id is not None and not await _tenants.tenant_exists(conn, tenant_id):
            raise UnknownTenant(tenant_id)
        return await _store.create_token(
            conn, tenant_id=tenant_id, name=name, kind=kind, expires_at=expires_at
        )


async def revoke(engine: AsyncEngine, token_id: str) -> bool:
    """Revoke an active token; when this returns, every worker refuses it. False: no such token."""
    async with auth_write(engine) as conn:
        return await _store.revoke(conn, token_id)


async def find_active(engine: AsyncEngine, secret: str, at: str) -> tuple[TokenInfo, dict[str, Any]] | None:
    """The live token a secret belongs to, with its tenant's settings; None when there is none."""
    return await _store.find_active(engine, secret, at)
