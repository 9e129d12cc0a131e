"""Who may call: API tokens and tenants with their settings (storage/tokens.py, storage/tenants.py)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.tokens import TokenInfo


class Tokens(Protocol):
    """API tokens, stored as hashes: a secret is returned once and never stored."""

    async def create_token(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str | None,
        name: str,
        kind: str = "scim",
        expires_at: str | None = None,
        secret: str | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new token (a fresh secret unless given) in the caller's transaction: its record and secret."""
        ...

    async def find_active(
        self, engine: AsyncEngine, secret: str, at: str
    ) -> tuple[TokenInfo, dict[str, Any]] | None:
        """The token of `secret`, unrevoked and unexpired at `at`, with its tenant's settings,
        in one statement outside any transaction; None otherwise."""
        ...

    async def get_token(self, conn: AsyncConnection, token_id: str) -> TokenInfo | None:
        """The token's record, revoked or not."""
        ...

    async def revoke(self, conn: AsyncConnection, token_id: str) -> bool:
        """Revoke a live token; False when there is none."""
        ...

    async def set_expiry(self, conn: AsyncConnection, token_id: str, expires_at: str) -> bool:
        """Make a live token expire at `expires_at`, sooner only; False when nothing changed."""
        ...

    async def touch(self, conn: AsyncConnection, token_id: str, at: str) -> None:
        """Record the token's last use."""
        ...


class Tenants(Protocol):
    """Tenants and their settings (a JSON object; a tenant that is not stored has none)."""

    async def tenant_exists(self, conn: AsyncConnection, tenant_id: str) -> bool: ...

    async def get_settings(self, conn: AsyncConnection, tenant_id: str) -> dict[str, Any]:
        """The tenant's settings in the caller's transaction ({} for an unknown tenant)."""
        ...

    async def read_settings(self, engine: AsyncEngine, tenant_id: str) -> dict[str, Any]:
        """`get_settings` outside any transaction, in one statement (the per-request path)."""
        ...

    async def update_settings(
        self, conn: AsyncConnection, tenant_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge `changes` (a None value removes its key) in the caller's transaction; the result."""
        ...
