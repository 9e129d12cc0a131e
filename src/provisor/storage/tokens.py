"""Bearer tokens: only SHA-256 hashes are stored; the secret is shown once at creation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import RowMapping, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.clock import now
from provisor.storage.direct import DirectStatement, reader
from provisor.storage.tables import tenants, tokens

TOKEN_PREFIX = "prv_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    tenant_id: str | None
    name: str
    kind: str
    created: str
    last_used: str | None
    expires_at: str | None
    revoked_at: str | None


async def create_token(
    conn: AsyncConnection,
    *,
    tenant_id: str | None,
    name: str,
    kind: str = "scim",
    expires_at: str | None = None,
    secret: str | None = None,
) -> tuple[TokenInfo, str]:
    """Store a new token's hash; return its record and the secret (never stored)."""
    secret = secret or new_secret()
    info = TokenInfo(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        name=name,
        kind=kind,
        created=now(),
        last_used=None,
        expires_at=expires_at,
        revoked_at=None,
    )
    await conn.execute(
        tokens.insert().values(
            id=info.id,
            tenant_id=tenant_id,
            name=name,
            kind=kind,
            secret_hash=hash_secret(secret),
            created=info.created,
            expires_at=expires_at,
        )
    )
    return info, secret


#: Built once; run on the driver connection (storage/direct.py): it is on every request's path.
_FIND_ACTIVE = DirectStatement(
    select(tokens, tenants.c.settings)
    .select_from(tokens.outerjoin(tenants, tenants.c.id == tokens.c.tenant_id))
    .where(tokens.c.secret_hash == bindparam("digest")),
    by_key=True,
)


async def find_active(engine: AsyncEngine, secret: str, at: str) -> tuple[TokenInfo, dict[str, Any]] | None:
    """The live token whose hash matches `secret` and its tenant's settings, or None.

    One indexed query per request, so a revoked or expired token stops working at once.
    """
    digest = hash_secret(secret)
    rows = await reader(engine).fetch(_FIND_ACTIVE, {"digest": digest})
    row = dict(zip(_FIND_ACTIVE.columns, rows[0], strict=True)) if rows else None
    if row is None or not hmac.compare_digest(row["secret_hash"], digest):
        return None
    if row["revoked_at"] is not None or (row["expires_at"] is not None and row["expires_at"] <= at):
        return None
    return _info(row), dict(row["settings"] or {})


async def list_tokens(conn: AsyncConnection) -> list[TokenInfo]:
    rows = (await conn.execute(select(tokens).order_by(tokens.c.created))).mappings().all()
    return [_info(r) for r in rows]


async def revoke(conn: AsyncConnection, token_id: str) -> bool:
    result = await conn.execute(
        update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)).values(revoked_at=now())
    )
    return bool(result.rowcount)


async def touch(conn: AsyncConnection, token_id: str, at: str) -> None:
    await conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used=at))


def _info(row: RowMapping | dict[str, Any]) -> TokenInfo:
    get = row.__getitem__
    return TokenInfo(
        id=get("id"),
        tenant_id=get("tenant_id"),
        name=get("name"),
        kind=get("kind"),
        created=get("created"),
        last_used=get("last_used"),
        expires_at=get("expires_at"),
        revoked_at=get("revoked_at"),
    )


async def get_token(conn: AsyncConnection, token_id: str) -> TokenInfo | None:
    row = (await conn.execute(select(tokens).where(tokens.c.id == token_id))).mappings().first()
    return _info(row) if row is not None else None


async def set_expiry(conn: AsyncConnection, token_id: str, expires_at: str) -> bool:
    """Make a live token expire at `expires_at` (sooner only: an earlier expiry is kept)."""
    result = await conn.execute(
        update(tokens)
        .where(
            tokens.c.id == token_id,
            tokens.c.revoked_at.is_(None),
            (tokens.c.expires_at.is_(None)) | (tokens.c.expires_at > expires_at),
        )
        .values(expires_at=expires_at)
    )
    return bool(result.rowcount)
