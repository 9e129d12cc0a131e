"""Resources: their writes with index rows and events, their reads and lists (storage/resources.py,
storage/outbox.py, storage/listing.py); many at once and managed accounts (storage/batch.py);
tombstones (storage/tombstones.py); the reads of an export (storage/transfer.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.events.model import EventOp
from provisor.filter.ast import Filter
from provisor.schema.model import AttrPath, ResourceType
from provisor.storage.batch import NewRow, PreparedBatch
from provisor.storage.listing import Listing
from provisor.storage.resource_rows import IndexRow, ResourceWrite, StoredResource
from provisor.storage.tombstones import Tombstone


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

    async def update_resource(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        current: StoredResource,
        at: str,
        doc: dict[str, Any],
        index: Iterable[IndexRow] | None,
        previous_index: Iterable[IndexRow] | None = None,
    ) -> StoredResource:
        """Store a new document version; `index=None` keeps the index rows as they are; in the
        caller's transaction (no event)."""
        ...

    async def touch_resource(
        self, conn: AsyncConnection, *, tenant_id: str, current: StoredResource, at: str
    ) -> StoredResource:
        """The next version of `current` with the same document, in the caller's transaction
        (which holds its row: a member of the group was deleted)."""
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


class ResourceReads(Protocol):
    """Reads of resources outside any transaction (on the driver connection, storage/direct.py):
    each one statement, so each sees one committed state."""

    async def read_resource(
        self, engine: AsyncEngine, tenant_id: str, resource_type: str, resource_id: str
    ) -> StoredResource | None:
        """The resource, None when it is not stored."""
        ...

    async def read_with_groups(
        self, engine: AsyncEngine, tenant_id: str, resource_type: str, resource_id: str
    ) -> tuple[StoredResource, list[tuple[str, str]]] | None:
        """The resource and the (group id, group displayName) of the groups directly containing
        it, read by the same statement; None when it is not stored."""
        ...

    async def list_by_indexed_value(
        self,
        engine: AsyncEngine,
        tenant_id: str,
        resource_type: str,
        attr: str,
        value_norm: str,
        *,
        offset: int,
        limit: int,
    ) -> list[StoredResource]:
        """A page of the resources whose indexed `attr` has the normalised value, in creation
        order then id (the default order of a list)."""
        ...

    async def list_by_indexed_value_with_groups(
        self,
        engine: AsyncEngine,
        tenant_id: str,
        resource_type: str,
        attr: str,
        value_norm: str,
        *,
        offset: int,
        limit: int,
    ) -> list[tuple[StoredResource, list[tuple[str, str]]]]:
        """`list_by_indexed_value` with each resource's direct groups, in one statement."""
        ...

    async def count_by_indexed_value(
        self, engine: AsyncEngine, tenant_id: str, resource_type: str, attr: str, value_norm: str
    ) -> int:
        """How many resources `list_by_indexed_value` would list without a page."""
        ...


class ResourceLists(Protocol):
    """Lists of resources by a bound filter, a sort attribute and a position (storage/listing.py):
    the service passes plain values, storage builds the SQL."""

    async def plan_listing(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        rt: ResourceType,
        node: Filter | None,
        sort: AttrPath | None,
        descending: bool,
    ) -> Listing:
        """The listing on `conn`, ordered by `sort` (None: creation time) NULLs last then id, so
        that pages by offset and by keyset are stable; its page and count share one plan. Raises
        the SCIM `invalidValue` of an unsortable attribute and `invalidFilter` of a filter SQL
        cannot answer."""
        ...

    def indexed_equality(self, node: Filter, rt: ResourceType) -> tuple[str, str] | None:
        """(attr, normalised value) when the whole filter is an indexed `attr eq "value"`: the
        lookup `ResourceReads.list_by_indexed_value` answers with a prebuilt statement."""
        ...


class Batches(Protocol):
    """Many new resources at once (a bulk import): their rows built before the transaction opens,
    then sent in multi-row statements; a batch is written whole or not at all."""

    def prepare_batch(
        self, *, tenant_id: str, resource_type: str, at: str, rows: Sequence[NewRow]
    ) -> PreparedBatch:
        """The resources' rows and their index rows, built before the transaction opens (no database)."""
        ...

    async def insert_many(self, conn: AsyncConnection, batch: PreparedBatch) -> list[StoredResource]:
        """Insert resources and their index rows; a uniqueness clash raises 409 for the whole batch."""
        ...

    async def write_batch(
        self, engine: AsyncEngine, batch: PreparedBatch, event_rows: Sequence[dict[str, Any]]
    ) -> list[StoredResource]:
        """`insert_many` and `append_events` in one transaction of their own."""
        ...

    async def append_events(self, conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        """Insert prepared event rows (the outbox) in multi-row statements."""
        ...

    async def find_by_index(
        self, conn: AsyncConnection, tenant_id: str, resource_type: str, attr: str, values: Sequence[str]
    ) -> dict[str, str]:
        """Map each normalised value of `attr` to the id of the resource holding it (first found)."""
        ...


class ManagedAccounts(Protocol):
    """Whether provisioning manages an account that exists already (adoption): found by an indexed
    value, then marked as managed or released."""

    async def find_by_index(
        self, conn: AsyncConnection, tenant_id: str, resource_type: str, attr: str, values: Sequence[str]
    ) -> dict[str, str]:
        """Map each normalised value of `attr` to the id of the resource holding it (first found)."""
        ...

    async def is_managed(self, conn: AsyncConnection, tenant_id: str, resource_id: str) -> bool | None:
        """Whether provisioning manages the resource; None when it is not stored."""
        ...

    async def set_managed(
        self, conn: AsyncConnection, tenant_id: str, resource_id: str, managed: bool
    ) -> None:
        """Mark the resource as managed by provisioning or not (adoption, release)."""
        ...


class Tombstones(Protocol):
    """Deleted resources kept for a while, so that an account created again is restored rather than
    new (service/tombstones.py); in the caller's transaction."""

    async def bury(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        tombstone: Tombstone,
        purge_after: str,
        external_id: str | None,
        name_norm: str | None,
    ) -> None:
        """Keep `tombstone` until `purge_after`; the caller deletes the resource in the same
        transaction."""
        ...

    async def has_match(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        resource_type: str,
        external_id: str | None,
        name_norm: str | None,
        at: str,
    ) -> bool:
        """Whether `take_match` would find one: a read, so that a POST with nothing to restore does
        not take the writer (SQLite) for it."""
        ...

    async def take_match(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        resource_type: str,
        external_id: str | None,
        name_norm: str | None,
        at: str,
    ) -> Tombstone | None:
        """Remove and return the newest unexpired tombstone matching `external_id` (when given) or
        else `name_norm`; None when there is none. Two concurrent POSTs of the same account: the row
        lock (PostgreSQL) or the single writer (SQLite) lets one restore it, the other sees none."""
        ...


class Transfer(Protocol):
    """Reads for an export: every resource of a type in a stable order, and resources and group
    members by id."""

    async def page_by_creation(
        self, conn: AsyncConnection, tenant_id: str, resource_type: str, *, offset: int, limit: int
    ) -> list[StoredResource]:
        """One page of every resource of a type, oldest first (id breaks ties), so an export read
        page by page sees each resource once while nothing is created or deleted meanwhile."""
        ...

    async def resources_by_ids(
        self, conn: AsyncConnection, tenant_id: str, resource_type: str, ids: Sequence[str]
    ) -> list[StoredResource]:
        """The stored resources of `resource_type` among `ids` (absent ones are left out), by id."""
        ...

    async def member_ids_of_groups(
        self, conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
    ) -> dict[str, set[str]]:
        """The member ids of each of `group_ids` (a group without members is absent)."""
        ...
