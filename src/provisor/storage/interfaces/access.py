"""Who may call, and how often: API tokens and tenants with their settings (storage/tokens.py,
storage/tenants.py), console sessions, setup links, rate buckets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.console_sessions import Session
from provisor.storage.rate_buckets import Decision
from provisor.storage.setup_links import SetupLink
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

    def hash_secret(self, secret: str) -> str:
        """The stored form of a secret (a token is found by it; the secret is never stored)."""
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

    async def ensure_tenant(self, conn: AsyncConnection, tenant_id: str) -> bool:
        """Create the tenant if it does not exist (idempotent, race-safe); True if this call created
        it."""
        ...

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


class ConsoleSessions(Protocol):
    """Console logins: a session opened by an admin token, found by its id (stored only hashed),
    ending when idle, at its absolute expiry, or when its token is revoked or expires."""

    async def open_session(
        self, conn: AsyncConnection, token_id: str, *, idle: timedelta, absolute: timedelta
    ) -> str:
        """Store a new session for the admin token `token_id`; return the session id (never stored)."""
        ...

    async def find_session(self, conn: AsyncConnection, session_id: str, at: str) -> Session | None:
        """The live session for `session_id`, or None (unknown, expired, or its token
        revoked/expired)."""
        ...

    async def extend_session(self, conn: AsyncConnection, id_hash: str, *, idle: timedelta) -> None:
        """Push the idle expiry forward (the caller writes at most once a minute per session)."""
        ...

    async def close_session(self, conn: AsyncConnection, session_id: str) -> None:
        """Delete the session (logout); nothing when there is none."""
        ...

    async def prune_sessions(self, conn: AsyncConnection, at: str) -> int:
        """Delete the sessions expired (idle or absolute) at `at`; how many."""
        ...


class SetupLinks(Protocol):
    """Setup links (docs/setup-link.md: one tenant's signed page for connecting its identity
    provider) and what the page's checklist reads: the requests and first events made with the
    tokens a link mints."""

    async def insert_link(self, conn: AsyncConnection, link: SetupLink) -> SetupLink:
        """Store `link` with the current event seq and request-log id as its starting points."""
        ...

    async def get_link(self, conn: AsyncConnection, link_id: str) -> SetupLink | None:
        """The setup link, revoked or not; None when unknown."""
        ...

    async def list_links(self, conn: AsyncConnection, tenant_id: str | None = None) -> list[SetupLink]:
        """Setup links (one tenant's, or every tenant's), oldest first."""
        ...

    async def touch_link(self, conn: AsyncConnection, link_id: str, at: str) -> None:
        """Record the link's last use."""
        ...

    async def revoke_link(self, conn: AsyncConnection, link_id: str) -> bool:
        """Revoke a live link; False when there is none."""
        ...

    async def revoke_tokens_named(self, conn: AsyncConnection, tenant_id: str, name: str) -> int:
        """Revoke the tenant's live tokens called `name` (a link's earlier mints)."""
        ...

    async def first_event(
        self, conn: AsyncConnection, tenant_id: str, after: int, actor: str, resource_type: str, op: str
    ) -> tuple[str, dict[str, Any]] | None:
        """The time and payload of the tenant's first `op` event on `resource_type` after seq
        `after` made by `actor` (a token name), if any."""
        ...

    async def requests_by_token(
        self, conn: AsyncConnection, tenant_id: str, token_name: str, after: int, limit: int
    ) -> list[dict[str, Any]]:
        """The latest `limit` request-log rows of one tenant made with tokens called `token_name`
        and with ids above `after`, oldest first."""
        ...


class RateBuckets(Protocol):
    """Per-tenant token buckets shared by every worker: each take is one atomic statement."""

    async def take(
        self, conn: AsyncConnection, tenant_id: str, *, rate: float, burst: float, at: float
    ) -> Decision:
        """Take one token from `tenant_id`'s bucket (created full on first use) if one is available."""
        ...
