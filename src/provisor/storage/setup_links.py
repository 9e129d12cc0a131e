"""SQL for setup links (docs/setup-link.md) and for the reads their page's live checklist makes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import RowMapping, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.clock import now
from provisor.storage.tables import events, request_log, setup_links, tokens


@dataclass(frozen=True)
class SetupLink:
    id: str
    tenant_id: str
    secret_hash: str
    created: str
    expires_at: str
    revoked_at: str | None
    last_used: str | None
    since_event: int = 0
    since_request: int = 0

    def state(self, at: str) -> str:
        """`revoked`, `expired` or `active` at instant `at`."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= at else "active"


def _link(row: RowMapping) -> SetupLink:
    return SetupLink(**{c: row[c] for c in SetupLink.__dataclass_fields__})


async def insert_link(conn: AsyncConnection, link: SetupLink) -> SetupLink:
    """Store `link` with the current event seq and request-log id as its starting points."""
    since_event = (await conn.execute(select(func.max(events.c.seq)))).scalar() or 0
    since_request = (await conn.execute(select(func.max(request_log.c.id)))).scalar() or 0
    stored = replace(link, since_event=int(since_event), since_request=int(since_request))
    await conn.execute(setup_links.insert().values(**stored.__dict__))
    return stored


async def get_link(conn: AsyncConnection, link_id: str) -> SetupLink | None:
    row = (await conn.execute(select(setup_links).where(setup_links.c.id == link_id))).mappings().first()
    return _link(row) if row else None


async def list_links(conn: AsyncConnection, tenant_id: str | None = None) -> list[SetupLink]:
    query = select(setup_links).order_by(setup_links.c.created, setup_links.c.id)
    if tenant_id is not None:
        query = query.where(setup_links.c.tenant_id == tenant_id)
    return [_link(r) for r in (await conn.execute(query)).mappings().all()]


async def revoke_link(conn: AsyncConnection, link_id: str) -> bool:
    result = await conn.execute(
        update(setup_links)
        .where(setup_links.c.id == link_id, setup_links.c.revoked_at.is_(None))
        .values(revoked_at=now())
    )
    return bool(result.rowcount)


async def touch_link(conn: AsyncConnection, link_id: str, at: str) -> None:
    await conn.execute(update(setup_links).where(setup_links.c.id == link_id).values(last_used=at))


async def revoke_tokens_named(conn: AsyncConnection, tenant_id: str, name: str) -> int:
    """Revoke the tenant's live tokens called `name` (a link's earlier mints)."""
    result = await conn.execute(
        update(tokens)
        .where(tokens.c.tenant_id == tenant_id, tokens.c.name == name, tokens.c.revoked_at.is_(None))
        .values(revoked_at=now())
    )
    return int(result.rowcount or 0)


async def requests_by_token(
    conn: AsyncConnection, tenant_id: str, token_name: str, after: int, limit: int
) -> list[dict[str, Any]]:
    """The latest `limit` request-log rows of one tenant made with tokens called `token_name`
    and with ids above `after`, oldest first."""
    query = (
        select(
            request_log.c.id,
            request_log.c.at,
            request_log.c.method,
            request_log.c.path,
            request_log.c.query,
            request_log.c.status,
            request_log.c.response_body,
        )
        .where(
            request_log.c.tenant_id == tenant_id,
            request_log.c.id > after,
            request_log.c.token_name == token_name,
        )
        .order_by(request_log.c.id.desc())
        .limit(limit)
    )
    rows = (await conn.execute(query)).mappings().all()
    return [dict(r) for r in reversed(rows)]


async def first_event(
    conn: AsyncConnection, tenant_id: str, after: int, actor: str, resource_type: str, op: str
) -> tuple[str, dict[str, Any]] | None:
    """The time and payload of the tenant's first `op` event on `resource_type` after seq `after`
    made by `actor` (a token name), if any."""
    query = (
        select(events.c.at, events.c.payload)
        .where(
            events.c.tenant_id == tenant_id,
            events.c.seq > after,
            events.c.actor == actor,
            events.c.resource_type == resource_type,
            events.c.op == op,
        )
        .order_by(events.c.seq)
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return str(row[0]), row[1] if isinstance(row[1], dict) else {}
