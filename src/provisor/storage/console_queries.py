"""Read queries for the web console (http/console): overview figures, the request log with its
events and deliveries, resource histories, webhook states. Each is one indexed query, bounded by a
limit, so pages stay fast on a 100,000-user tenant (bench/console.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.storage.tables import (
    events,
    request_log,
    resources,
    tenants,
    tokens,
    webhook_deliveries,
    webhooks,
)

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _rows(result: Any) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in result.mappings().all()]


async def tenant_ids(conn: AsyncConnection) -> list[str]:
    return [str(t) for t in (await conn.execute(select(tenants.c.id).order_by(tenants.c.id))).scalars()]


async def resource_counts(conn: AsyncConnection, tenant_id: str) -> dict[str, int]:
    """Users and groups of one tenant, counted on the (tenant, type, ...) index: one count per
    type, which SQLite answers in half the time of a GROUP BY over both."""
    r = resources.c
    out = {}
    for key, kind in (("users", "User"), ("groups", "Group")):
        query = select(func.count()).where(r.tenant_id == tenant_id, r.resource_type == kind)
        out[key] = int((await conn.execute(query)).scalar() or 0)
    return out


async def inactive_users(conn: AsyncConnection, tenant_id: str) -> int:
    """Users with `active` false. `active` is not indexed, so this reads every user document of
    the tenant (about half a second for 100,000 on SQLite): the console counts it in the
    background and shows the last count (service/console.py)."""
    r = resources.c
    query = select(func.count()).where(
        r.tenant_id == tenant_id, r.resource_type == "User", r.doc["active"].as_boolean().is_(False)
    )
    return int((await conn.execute(query)).scalar() or 0)


async def last_request(conn: AsyncConnection, tenant_id: str) -> dict[str, Any] | None:
    rl = request_log.c
    query = (
        select(rl.id, rl.at, rl.token_name, rl.method, rl.path, rl.status)
        .where(rl.tenant_id == tenant_id)
        .order_by(rl.id.desc())
        .limit(1)
    )
    rows = _rows(await conn.execute(query))
    return rows[0] if rows else None


async def errors_since(conn: AsyncConnection, tenant_id: str, since: str) -> int:
    rl = request_log.c
    query = select(func.count()).where(rl.tenant_id == tenant_id, rl.at >= since, rl.status >= 400)
    return int((await conn.execute(query)).scalar() or 0)


async def recent_write_times(conn: AsyncConnection, tenant_id: str, limit: int) -> list[str]:
    """When the tenant's last `limit` write requests arrived, newest first (the silence alarm)."""
    rl = request_log.c
    query = (
        select(rl.at)
        .where(rl.tenant_id == tenant_id, rl.method.in_(WRITE_METHODS))
        .order_by(rl.id.desc())
        .limit(limit)
    )
    return [str(a) for a in (await conn.execute(query)).scalars()]


async def delivery_backlog(conn: AsyncConnection) -> dict[str, dict[str, int]]:
    """Pending and dead deliveries per tenant: `{tenant: {"pending": n, "dead": n}}`."""
    d = webhook_deliveries.c
    query = (
        select(d.tenant_id, d.state, func.count())
        .where(d.state.in_(("pending", "dead")))
        .group_by(d.tenant_id, d.state)
    )
    out: dict[str, dict[str, int]] = {}
    for tenant, state, count in (await conn.execute(query)).all():
        out.setdefault(str(tenant), {"pending": 0, "dead": 0})[str(state)] = int(count)
    return out


@dataclass(frozen=True)
class RequestSearch:
    tenant: str | None = None
    status_class: int | None = None  # 2, 3, 4 or 5
    method: str | None = None
    path: str | None = None  # substring
    since: str | None = None
    until: str | None = None
    before: int | None = None  # id cursor: rows older than this


async def search_requests(conn: AsyncConnection, where: RequestSearch, limit: int) -> list[dict[str, Any]]:
    """Newest first, without the bodies (the list page does not show them)."""
    rl = request_log.c
    query = (
        select(
            rl.id,
            rl.at,
            rl.tenant_id,
            rl.request_id,
            rl.method,
            rl.path,
            rl.query,
            rl.status,
            rl.duration_ms,
            rl.token_name,
        )
        .order_by(rl.id.desc())
        .limit(limit)
    )
    if where.tenant:
        query = query.where(rl.tenant_id == where.tenant)
    if where.status_class:
        low = where.status_class * 100
        query = query.where(rl.status >= low, rl.status < low + 100)
    if where.method:
        query = query.where(rl.method == where.method.upper())
    if where.path:
        escaped = where.path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(rl.path.like(f"%{escaped}%", escape="\\"))
    if where.since:
        query = query.where(rl.at >= where.since)
    if where.until:
        query = query.where(rl.at <= where.until)
    if where.before:
        query = query.where(rl.id < where.before)
    return _rows(await conn.execute(query))


async def get_request(conn: AsyncConnection, row_id: int) -> dict[str, Any] | None:
    rows = _rows(await conn.execute(select(request_log).where(request_log.c.id == row_id)))
    return rows[0] if rows else None


async def events_in_window(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    start: str,
    end: str,
    actor: str | None,
    resource_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Events a request produced: written for its tenant by its token between its start and end,
    on its resource when it names one. Events carry no request id, so concurrent requests of the
    same token inside the same window cannot be told apart (docs/console.md)."""
    e = events.c
    query = select(events).where(e.tenant_id == tenant_id, e.at >= start, e.at <= end)
    if resource_id is not None:
        query = query.where(e.resource_id == resource_id)
    query = query.where(e.actor.is_(None) if actor is None else e.actor == actor)
    return _rows(await conn.execute(query.order_by(e.seq.desc()).limit(limit)))


async def deliveries_of(conn: AsyncConnection, seqs: list[int]) -> list[dict[str, Any]]:
    if not seqs:
        return []
    d = webhook_deliveries.c
    query = (
        select(webhook_deliveries, webhooks.c.url)
        .select_from(webhook_deliveries.join(webhooks, webhooks.c.id == d.webhook_id))
        .where(d.event_seq.in_(seqs))
        .order_by(d.event_seq, d.webhook_id)
    )
    return _rows(await conn.execute(query))


async def resource_history(
    conn: AsyncConnection, tenant_id: str, resource_id: str, limit: int
) -> list[dict[str, Any]]:
    e = events.c
    query = (
        select(e.seq, e.at, e.op, e.version, e.actor, e.resource_type)
        .where(e.tenant_id == tenant_id, e.resource_id == resource_id)
        .order_by(e.seq.desc())
        .limit(limit)
    )
    return _rows(await conn.execute(query))


async def event_feed(
    conn: AsyncConnection, *, tenant: str | None, before: int | None, after: int | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first; `after` returns only newer events (the page's live refresh)."""
    e = events.c
    query = select(e.seq, e.tenant_id, e.at, e.resource_type, e.resource_id, e.op, e.version, e.actor)
    if tenant:
        query = query.where(e.tenant_id == tenant)
    if before:
        query = query.where(e.seq < before)
    if after is not None:
        query = query.where(e.seq > after)
    return _rows(await conn.execute(query.order_by(e.seq.desc()).limit(limit)))


async def webhook_states(conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Per webhook: pending and dead counts, the last delivery time and the latest failure."""
    d = webhook_deliveries.c
    query = select(
        d.webhook_id,
        func.count().filter(d.state == "pending"),
        func.count().filter(d.state == "dead"),
        func.max(d.delivered_at),
        func.count().filter(d.last_error.is_not(None)),
    ).group_by(d.webhook_id)
    out: dict[str, dict[str, Any]] = {}
    for hook, pending, dead, last, failing in (await conn.execute(query)).all():
        out[str(hook)] = {
            "pending": int(pending),
            "dead": int(dead),
            "last_delivered": last,
            "failing": int(failing),
        }
    errors = (
        select(d.webhook_id, d.last_error, d.event_seq)
        .where(d.last_error.is_not(None))
        .order_by(d.event_seq.desc())
        .limit(200)
    )
    for hook, error, _seq in (await conn.execute(errors)).all():
        entry = out.setdefault(str(hook), {"pending": 0, "dead": 0, "last_delivered": None, "failing": 0})
        entry.setdefault("last_error", error)
    return out


async def dead_letters(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    d = webhook_deliveries.c
    query = (
        select(
            d.webhook_id,
            d.event_seq,
            d.tenant_id,
            d.resource_id,
            d.attempts,
            d.last_error,
            events.c.op,
            events.c.at,
            events.c.resource_type,
            webhooks.c.url,
        )
        .select_from(
            webhook_deliveries.join(webhooks, webhooks.c.id == d.webhook_id).outerjoin(
                events, events.c.seq == d.event_seq
            )
        )
        .where(d.state == "dead")
        .order_by(d.event_seq.desc())
        .limit(limit)
    )
    return _rows(await conn.execute(query))


async def redrive_one(conn: AsyncConnection, webhook_id: str, seq: int, at: str) -> bool:
    d = webhook_deliveries.c
    result = await conn.execute(
        update(webhook_deliveries)
        .where(d.webhook_id == webhook_id, d.event_seq == seq, d.state == "dead")
        .values(state="pending", attempts=0, next_attempt_at=at, locked_until=None)
    )
    return bool(result.rowcount)


async def token_rows(conn: AsyncConnection) -> list[dict[str, Any]]:
    t = tokens.c
    state = case((t.revoked_at.is_not(None), "revoked"), else_="active")
    query = select(
        t.id,
        t.tenant_id,
        t.name,
        t.kind,
        t.created,
        t.last_used,
        t.expires_at,
        t.revoked_at,
        state.label("state"),
    ).order_by(t.created.desc())
    return _rows(await conn.execute(query))
