"""The change feed as the admin API reads it: pages of the outbox, and named consumers' positions.

Each read is one short transaction, so a long-polling reader holds no connection while it waits.
"""

from __future__ import annotations

from provisor.errors import ScimError, invalid_value, not_found
from provisor.storage import consumers as store
from provisor.storage import event_log
from provisor.storage.consumers import Consumer
from provisor.storage.event_log import EventFilter, EventPage
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import Consumers, EventLog
from provisor.storage.transactions import read_transaction, write_transaction

__all__ = ["Consumer", "EventFilter", "EventPage"]

#: Storage as the contract names it (storage/interfaces/).
_store: Consumers = store
_events: EventLog = event_log


async def read_page(engine: AsyncEngine, after: int, limit: int, where: EventFilter) -> EventPage:
    """Up to `limit` events after `after` that match `where`; `next` passes filtered-out ones too."""
    async with read_transaction(engine) as conn:
        return await _events.read_events(conn, after, limit, where)


async def consumer_start(engine: AsyncEngine, name: str, where: EventFilter) -> tuple[int, EventFilter]:
    """Where a named consumer resumes, and `where` narrowed to its tenant scope (a consumer scoped
    to one tenant never reads another's events, whatever the request asks)."""
    async with read_transaction(engine) as conn:
        consumer = await _store.get_consumer(conn, name)
    if consumer is None:
        raise not_found(f"consumer {name} not found")
    if consumer.tenant is not None:
        if where.tenant not in (None, consumer.tenant):
            raise invalid_value(f"consumer {name} is scoped to tenant {consumer.tenant}")
        where = EventFilter(consumer.tenant, where.resource_type, where.ops)
    return consumer.seq, where


async def consumers(engine: AsyncEngine) -> tuple[list[Consumer], int]:
    """Every consumer, and the head of the log they lag behind (read in one transaction)."""
    async with read_transaction(engine) as conn:
        return await _store.list_consumers(conn), await _events.latest_seq(conn)


async def consumer(engine: AsyncEngine, name: str) -> tuple[Consumer, int]:
    """One consumer and the log's head; 404 when there is no such consumer."""
    async with read_transaction(engine) as conn:
        found = await _store.get_consumer(conn, name)
        head = await _events.latest_seq(conn)
    if found is None:
        raise not_found(f"consumer {name} not found")
    return found, head


async def commit(
    engine: AsyncEngine, name: str, seq: int, *, tenant: str | None, force: bool
) -> tuple[Consumer, int]:
    """Move a consumer to `seq` (creating it on first commit), and the log's head.

    Moving back is refused (409) unless forced, and a seq past the head is refused (400): storage
    decides both under the consumer's row lock, so concurrent commits cannot interleave.
    """
    try:
        async with write_transaction(engine) as conn:
            moved = await _store.commit_position(conn, name, seq, tenant=tenant, force=force)
            return moved, await _events.latest_seq(conn)
    except store.PositionError as error:
        raise ScimError(error.status, error.detail) from None


async def delete_consumer(engine: AsyncEngine, name: str) -> None:
    """Forget a consumer (its position stops holding back pruning); 404 when there is none."""
    async with write_transaction(engine) as conn:
        if not await _store.delete_consumer(conn, name):
            raise not_found(f"consumer {name} not found")
