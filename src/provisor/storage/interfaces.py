"""The storage contract the service's write path is typed against.

Each Protocol names what a storage module offers and promises, in its docstrings; the module
itself (storage/resources.py, storage/outbox.py) is the implementation, checked by mypy where the
service binds it (service/resources.py `ResourceService.writes`). The per-database statements
stay behind these signatures: nothing here says PostgreSQL or SQLite.

Covered so far: resource writes and the outbox. Reads and lists, members, tokens, tenants and the
request log are still called as plain module functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.events.model import EventOp
from provisor.storage.resources import IndexRow, ResourceWrite, StoredResource


class ResourceWrites(Protocol):
    """Writes of one resource, each atomic with its index rows and its event.

    Errors are storage's own (storage/errors.py): a unique value held by another resource raises
    `UniqueViolation` and writes nothing; a resource that is not stored raises `NotFound` where a
    resource is required; an outage raises the driver's error, classified by storage/faults.py.
    """

    async def create_at_once(
        self,
        engine: AsyncEngine,
        *,
        tenant_id: str,
        stored: StoredResource,
        index: Sequence[IndexRow],
        actor: str | None,
        event_payload: dict[str, Any],
    ) -> None:
        """A new version-1 resource, its index rows and its `created` event, without a
        transaction of the caller's (one statement on PostgreSQL, one call on SQLite)."""
        ...

    async def insert_resource(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        resource_type: str,
        resource_id: str,
        at: str,
        doc: dict[str, Any],
        index: Iterable[IndexRow],
        version: int = 1,
        created: str | None = None,
    ) -> StoredResource:
        """A new resource row and its index rows in the caller's transaction (no event)."""
        ...

    def resource_write(
        self,
        engine: AsyncEngine,
        tenant_id: str,
        resource_type: str,
        resource_id: str,
        *,
        locked: bool,
        with_groups: bool = False,
    ) -> AbstractAsyncContextManager[ResourceWrite]:
        """The resource as read (raises NotFound) and its `update`: without the lock, one
        statement that applies only if the version read is still stored (False otherwise); with
        it, a transaction holding the row whose `conn` the caller may write other rows on."""
        ...

    async def fetch_resource(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        resource_type: str,
        resource_id: str,
        *,
        for_update: bool = False,
    ) -> StoredResource | None:
        """The resource in the caller's transaction (`for_update`: its row locked until the end)."""
        ...

    async def delete_resource(
        self, conn: AsyncConnection, tenant_id: str, resource_type: str, resource_id: str
    ) -> bool:
        """The resource and its index rows gone, in the caller's transaction (no event)."""
        ...


class Outbox(Protocol):
    """The transactional outbox: an event is written in the transaction of its change, so a
    committed change always has its event and a rolled-back one never does."""

    async def append_event(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        at: str,
        resource_type: str,
        resource_id: str,
        op: EventOp,
        version: int | None,
        actor: str | None,
        payload: dict[str, Any] | None,
    ) -> None:
        """One event row (events/model.py `event_row`) in `conn`'s transaction."""
        ...
