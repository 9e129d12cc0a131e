"""Webhook subscriptions and the delivery state machine (pending -> delivered | dead).

Several workers (processes) may run at once: fan-out serialises on the webhook row, and a
delivery is claimed by a conditional UPDATE of its lease, so under normal operation each
attempt is made by one worker. A worker that dies mid-send loses its lease after `lease`
seconds and another worker retries: delivery is at-least-once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.clock import format_instant, now
from provisor.events.model import Event
from provisor.storage.event_log import DEFAULT_GAP_GRACE_SECONDS, latest_seq, read_events
from provisor.storage.kind import backend
from provisor.storage.tables import events, webhook_deliveries, webhooks

FORMATS = ("json", "set")


@dataclass(frozen=True)
class Webhook:
    id: str
    tenant_id: str | None
    url: str
    secret: str
    events: list[str] | None
    format: str
    created: str
    disabled: bool
    cursor: int


@dataclass(frozen=True)
class Delivery:
    webhook: Webhook
    event: Event
    attempts: int


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row["id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        secret=row["secret"],
        events=list(row["events"]) if row["events"] is not None else None,
        format=row["format"],
        created=row["created"],
        disabled=bool(row["disabled"]),
        cursor=int(row["cursor"]),
    )


def instant_in(seconds: float) -> str:
    return format_instant(datetime.now(UTC) + timedelta(seconds=seconds))


async def add_webhook(
    conn: AsyncConnection,
    *,
    url: str,
    secret: str,
    tenant_id: str | None = None,
    ops: list[str] | None = None,
    format: str = "json",
) -> Webhook:
    """Subscribe `url`; it receives events committed from now on (its cursor starts at the head)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if not url.startswith(("http://", "https://")):
        raise ValueError("url must start with http:// or https://")
    values = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "url": url,
        "secret": secret,
        "events": ops,
        "format": format,
        "created": now(),
        "disabled": False,
        "cursor": await latest_seq(conn),
    }
    await conn.execute(webhooks.insert().values(**values))
    return _webhook(values)


async def list_webhooks(conn: AsyncConnection) -> list[Webhook]:
    rows = (await conn.execute(select(webhooks).order_by(webhooks.c.created))).mappings().all()
    return [_webhook(r) for r in rows]


async def remove_webhook(conn: AsyncConnection, webhook_id: str) -> bool:
    await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    result = await conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
    return bool(result.rowcount)


async def fan_out(
    conn: AsyncConnection, webhook_id: str, *, batch: int = 500, gap_grace: float = DEFAULT_GAP_GRACE_SECONDS
) -> int:
    """Turn events past the webhook's cursor into pending deliveries; return how many were added.

    Call inside a write transaction: the row lock (PostgreSQL) or the write lock (SQLite) makes
    concurrent workers fan out one after the other, and the cursor moves in the same commit.
    """
    query = select(webhooks).where(webhooks.c.id == webhook_id)
    if backend(conn).row_locks:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None or row["disabled"]:
        return 0
    hook = _webhook(row)
    page = await read_events(conn, hook.cursor, batch, gap_grace=gap_grace)
    if page.next <= hook.cursor:
        return 0
    wanted = set(hook.events) if hook.events is not None else None
    due = now()
    rows = [
        {
            "webhook_id": hook.id,
            "event_seq": e.seq,
            "tenant_id": e.tenant,
            "resource_id": e.resource_id,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": due,
        }
        for e in page.events
        if (hook.tenant_id is None or e.tenant == hook.tenant_id) and (wanted is None or e.op in wanted)
    ]
    if rows:
        await conn.execute(webhook_deliveries.insert(), rows)
    await conn.execute(update(webhooks).where(webhooks.c.id == hook.id).values(cursor=page.next))
    return len(rows)


def _blocked() -> Any:
    """An earlier event for the same webhook and resource is not delivered yet."""
    d = webhook_deliveries
    earlier = webhook_deliveries.alias("earlier")
    return exists().where(
        and_(
            earlier.c.webhook_id == d.c.webhook_id,
            earlier.c.tenant_id == d.c.tenant_id,
            earlier.c.resource_id == d.c.resource_id,
            earlier.c.event_seq < d.c.event_seq,
            earlier.c.state != "delivered",
        )
    )


def _free(moment: str) -> Any:
    d = webhook_deliveries
    return or_(d.c.locked_until.is_(None), d.c.locked_until < moment)


async def due_keys(conn: AsyncConnection, *, limit: int) -> list[tuple[str, int]]:
    """(webhook id, seq) of due deliveries, at most the oldest undelivered one per resource.

    Due means pending, retry time reached, nobody holds the lease, and no earlier event for the
    same webhook and resource is undelivered (pending or dead): this keeps per-resource order
    across retries and redrives. A read: callers lease the keys with `claim`.
    """
    moment = now()
    d = webhook_deliveries
    query = (
        select(d.c.webhook_id, d.c.event_seq)
        .where(d.c.state == "pending", d.c.next_attempt_at <= moment, _free(moment), ~_blocked())
        .order_by(d.c.event_seq)
        .limit(limit)
    )
    return [(str(w), int(s)) for w, s in (await conn.execute(query)).all()]


async def claim(
    conn: AsyncConnection, keys: list[tuple[str, int]], *, lease_seconds: float
) -> list[Delivery]:
    """Lease `keys` with a conditional UPDATE; return the deliveries this caller now owns.

    The WHERE re-checks the lease, so of two workers racing for one row only one update matches
    (PostgreSQL re-evaluates it after the row lock; SQLite runs writers one at a time).
    """
    moment = now()
    d = webhook_deliveries
    until = instant_in(lease_seconds)
    claimed: list[tuple[str, int]] = []
    for webhook_id, seq in keys:
        result = await conn.execute(
            update(d)
            .where(d.c.webhook_id == webhook_id, d.c.event_seq == seq, d.c.state == "pending", _free(moment))
            .values(locked_until=until)
        )
        if result.rowcount:
            claimed.append((webhook_id, seq))
    return await _load(conn, claimed) if claimed else []


async def _load(conn: AsyncConnection, keys: list[tuple[str, int]]) -> list[Delivery]:
    d = webhook_deliveries
    query = (
        select(d.c.webhook_id, d.c.attempts, events, *[c.label(f"w_{c.name}") for c in webhooks.c])
        .select_from(
            d.join(events, events.c.seq == d.c.event_seq).join(webhooks, webhooks.c.id == d.c.webhook_id)
        )
        .where(or_(*[and_(d.c.webhook_id == w, d.c.event_seq == s) for w, s in keys]))
        .order_by(d.c.event_seq)
    )
    out: list[Delivery] = []
    for row in (await conn.execute(query)).mappings():
        hook = _webhook({c.name: row[f"w_{c.name}"] for c in webhooks.c})
        out.append(Delivery(hook, Event.from_row(row), int(row["attempts"])))
    return out


async def mark_delivered(conn: AsyncConnection, webhook_id: str, seq: int) -> None:
    d = webhook_deliveries
    await conn.execute(
        update(d)
        .where(d.c.webhook_id == webhook_id, d.c.event_seq == seq)
        .values(
            state="delivered",
            attempts=d.c.attempts + 1,
            delivered_at=now(),
            locked_until=None,
            last_error=None,
        )
    )


async def mark_failed(
    conn: AsyncConnection, webhook_id: str, seq: int, *, error: str, retry_in: float | None
) -> None:
    """Record a failed attempt: retry after `retry_in` seconds, or `dead` when it is None."""
    d = webhook_deliveries
    values: dict[str, Any] = {"attempts": d.c.attempts + 1, "locked_until": None, "last_error": error[:2000]}
    if retry_in is None:
        values["state"] = "dead"
    else:
        values["next_attempt_at"] = instant_in(retry_in)
    await conn.execute(update(d).where(d.c.webhook_id == webhook_id, d.c.event_seq == seq).values(**values))


async def dead_deliveries(conn: AsyncConnection, webhook_id: str | None = None) -> list[dict[str, Any]]:
    d = webhook_deliveries
    query = select(d).where(d.c.state == "dead").order_by(d.c.webhook_id, d.c.event_seq)
    if webhook_id is not None:
        query = query.where(d.c.webhook_id == webhook_id)
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def redrive(conn: AsyncConnection, webhook_id: str | None = None) -> int:
    """Dead deliveries become pending again, due now, with a fresh attempt budget."""
    d = webhook_deliveries
    query = update(d).where(d.c.state == "dead")
    if webhook_id is not None:
        query = query.where(d.c.webhook_id == webhook_id)
    values = {"state": "pending", "attempts": 0, "next_attempt_at": now(), "locked_until": None}
    result = await conn.execute(query.values(**values))
    return int(result.rowcount or 0)


async def delivery_states(conn: AsyncConnection, webhook_id: str) -> dict[int, str]:
    d = webhook_deliveries
    rows = await conn.execute(select(d.c.event_seq, d.c.state).where(d.c.webhook_id == webhook_id))
    return {int(s): str(state) for s, state in rows}


@dataclass(frozen=True)
class OutboxState:
    """What the metrics report about the outbox: see telemetry/metrics.py `outbox_families`."""

    newest_seq: int
    #: The lowest position over enabled webhooks (None without any): the event before its oldest
    #: pending delivery, or its fan-out cursor when nothing is pending.
    slowest_position: int | None
    dead: int


async def outbox_state(conn: AsyncConnection) -> OutboxState:
    d, w = webhook_deliveries, webhooks
    newest = await latest_seq(conn)
    oldest_pending = (
        select(func.min(d.c.event_seq))
        .where(d.c.webhook_id == w.c.id, d.c.state == "pending")
        .scalar_subquery()
    )
    positions = await conn.execute(select(w.c.cursor, oldest_pending).where(w.c.disabled.is_(False)))
    slowest: int | None = None
    for cursor, pending in positions:
        position = int(cursor) if pending is None else min(int(cursor), int(pending) - 1)
        slowest = position if slowest is None else min(slowest, position)
    dead = (await conn.execute(select(func.count()).select_from(d).where(d.c.state == "dead"))).scalar_one()
    return OutboxState(newest, slowest, int(dead))
