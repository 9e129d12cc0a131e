"""Webhook subscriptions as the console manages them, and the outbox state `/metrics` reports."""

from __future__ import annotations

from provisor.clock import now
from provisor.storage import console_queries as q
from provisor.storage import webhooks as store
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import ConsoleQueries, Webhooks
from provisor.storage.transactions import read_transaction, write_transaction
from provisor.storage.webhooks import OutboxState, Webhook

__all__ = ["OutboxState", "Webhook", "add", "find", "outbox_state", "redrive", "remove"]

#: Storage as the contract names it (storage/interfaces/).
_store: Webhooks = store
_queries: ConsoleQueries = q


async def add(
    engine: AsyncEngine, *, url: str, secret: str, tenant_id: str | None, ops: list[str] | None, format: str
) -> Webhook:
    """Subscribe `url`; a `ValueError` names what is wrong with the subscription."""
    async with write_transaction(engine) as conn:
        return await _store.add_webhook(
            conn, url=url, secret=secret, tenant_id=tenant_id, ops=ops, format=format
        )


async def remove(engine: AsyncEngine, webhook_id: str) -> bool:
    async with write_transaction(engine) as conn:
        return await _store.remove_webhook(conn, webhook_id)


async def find(engine: AsyncEngine, webhook_id: str) -> Webhook | None:
    async with read_transaction(engine) as conn:
        return next((h for h in await _store.list_webhooks(conn) if h.id == webhook_id), None)


async def redrive(engine: AsyncEngine, webhook_id: str, seq: int | None) -> int:
    """Send dead deliveries again: one (with a seq), or all of one webhook, or all ("" for the
    webhook). The number of deliveries put back in the queue."""
    async with write_transaction(engine) as conn:
        if seq is not None:
            return int(await _queries.redrive_one(conn, webhook_id, seq, now()))
        return await _store.redrive(conn, webhook_id or None)


async def outbox_state(engine: AsyncEngine) -> OutboxState:
    """The newest seq, the slowest enabled webhook's position and the dead letters, for metrics."""
    async with read_transaction(engine) as conn:
        return await _store.outbox_state(conn)
