"""Events: the log and its feed's consumers (storage/event_log.py, storage/consumers.py), webhook
deliveries (storage/webhooks.py), and snapshots consistent with a position in it
(storage/snapshot.py)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.consumers import Consumer, Deprovisioning
from provisor.storage.event_log import DEFAULT_GAP_GRACE_SECONDS, EventFilter, EventPage
from provisor.storage.resource_rows import StoredResource
from provisor.storage.webhooks import OutboxState, Webhook


class EventLog(Protocol):
    """The event log (the outbox), read in seq order: a reader stops before a missing seq (a
    transaction may still commit it) unless the event after it is older than `gap_grace` (then the
    gap is taken to be a rollback), so a reader's cursor never passes an event yet to appear."""

    async def read_events(
        self,
        conn: AsyncConnection,
        after: int,
        limit: int,
        where: EventFilter | None = None,
        *,
        gap_grace: float = DEFAULT_GAP_GRACE_SECONDS,
    ) -> EventPage:
        """Up to `limit` events with seq > `after` matching `where`, in seq order, never past a gap."""
        ...

    async def latest_seq(self, conn: AsyncConnection) -> int:
        """The highest event seq `conn` sees (0 for none)."""
        ...


class Consumers(Protocol):
    """Named consumers of the event feed and the durable position each has committed; a commit
    also stamps when the consumer acknowledged each deprovisioning event it passed."""

    async def get_consumer(
        self, conn: AsyncConnection, name: str, *, for_update: bool = False
    ) -> Consumer | None:
        """The named consumer (`for_update`: its row locked until the end), None when unknown."""
        ...

    async def list_consumers(self, conn: AsyncConnection) -> list[Consumer]:
        """Every named consumer."""
        ...

    async def commit_position(
        self, conn: AsyncConnection, name: str, seq: int, *, tenant: str | None, force: bool
    ) -> Consumer:
        """Set `name`'s position to `seq` (creating the consumer, scoped to `tenant`, on first
        commit); `PositionError` for a seq outside the log, a rewind without `force`, or a
        consumer scoped otherwise or changed concurrently."""
        ...

    async def delete_consumer(self, conn: AsyncConnection, name: str) -> bool:
        """Forget the consumer (pruning stops keeping events for it); False when unknown."""
        ...


class DeprovisioningLog(Protocol):
    """Deprovisioning events (a user deactivated or deleted) and which consumers have acknowledged
    them, per tenant (storage/consumers.py)."""

    async def count_deprovisioning(
        self, conn: AsyncConnection, tenant: str, *, since: str, before: str | None, unacknowledged: bool
    ) -> int:
        """How many events `list_deprovisioning` would list without a limit."""
        ...

    async def list_deprovisioning(
        self,
        conn: AsyncConnection,
        tenant: str,
        *,
        since: str,
        before: str | None,
        unacknowledged: bool,
        limit: int,
    ) -> list[Deprovisioning]:
        """The tenant's deprovisioning events with `since <= at < before`, each with every in-scope
        consumer's acknowledgement; with `unacknowledged`, only those some consumer has not
        acknowledged."""
        ...

    async def ack_delays(
        self, conn: AsyncConnection, tenant: str, since: str
    ) -> dict[str, list[tuple[str, str]]]:
        """(event time, acknowledgement time) per consumer, for the tenant's events since `since`."""
        ...

    async def pending_counts(self, conn: AsyncConnection, tenant: str, older_than: str) -> dict[str, int]:
        """Per in-scope consumer: the tenant's deprovisioning events before `older_than` it has not
        acknowledged (those still in the log; pruning keeps what a consumer has not passed)."""
        ...


class Webhooks(Protocol):
    """Webhook subscriptions: each fans the events committed after it was added out into deliveries,
    retried until they succeed or are dead (then redriven by hand)."""

    async def add_webhook(
        self,
        conn: AsyncConnection,
        *,
        url: str,
        secret: str,
        tenant_id: str | None = None,
        ops: list[str] | None = None,
        format: str = "json",
    ) -> Webhook:
        """Subscribe `url`; it receives events committed from now on (its cursor starts at the
        head)."""
        ...

    async def remove_webhook(self, conn: AsyncConnection, webhook_id: str) -> bool:
        """Delete the subscription and its deliveries; False when unknown."""
        ...

    async def list_webhooks(self, conn: AsyncConnection) -> list[Webhook]:
        """Every webhook subscription."""
        ...

    async def outbox_state(self, conn: AsyncConnection) -> OutboxState:
        """How far behind the slowest enabled webhook is (the head seq and its position)."""
        ...

    async def redrive(self, conn: AsyncConnection, webhook_id: str | None = None) -> int:
        """Dead deliveries become pending again, due now, with a fresh attempt budget."""
        ...


class Snapshots(Protocol):
    """Reads in one view that is exactly "every event up to seq N": a consumer loads the snapshot,
    then follows the feed after N, and sees each change once."""

    def snapshot_transaction(
        self, engine: AsyncEngine
    ) -> AbstractAsyncContextManager[tuple[AsyncConnection, int]]:
        """A connection inside a read transaction, and the seq N its view is consistent with."""
        ...

    async def page_after(
        self, conn: AsyncConnection, tenant_id: str, resource_type: str, after_id: str | None, limit: int
    ) -> list[StoredResource]:
        """The next `limit` resources of a type by id (the primary key's order), after `after_id`."""
        ...

    def is_lock_timeout(self, error: BaseException) -> bool:
        """Did opening the snapshot give up waiting for writers (`LOCK_TIMEOUT`)? Then a retry later
        may succeed, and the caller should say so rather than fail the request as a fault
        (PostgreSQL's lock timeout, storage/postgres/snapshot.py `LOCK_TIMEOUT`)."""
        ...
