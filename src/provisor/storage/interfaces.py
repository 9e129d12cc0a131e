"""The storage contract the service layer is typed against.

Each Protocol names what a storage module offers and promises, in its docstrings; the module
itself is the implementation, checked by mypy where the service binds it (a module assigned to
an attribute or a name of the Protocol's type: `ResourceService.writes`, `.reads`, `.lists`,
`.outbox`, `GroupService.members`, `UserService.groups_of`, and the `_store` of service/tokens.py,
service/tenants.py, service/request_log.py). The per-database statements stay behind these
signatures: nothing here says PostgreSQL or SQLite.

Errors are storage's own (storage/errors.py) unless a docstring says otherwise; an outage
raises the driver's error, which storage/faults.py classifies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.events.model import EventOp
from provisor.filter.ast import Filter
from provisor.schema.model import AttrPath, ResourceType
from provisor.storage.listing import Listing
from provisor.storage.members import MemberChange
from provisor.storage.request_log import RequestFilter, UnknownCount
from provisor.storage.resource_rows import IndexRow, ResourceWrite, StoredResource
from provisor.storage.tokens import TokenInfo

_T = TypeVar("_T")


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


class Members(Protocol):
    """A group's member rows (`group_members`), in the caller's transaction unless said otherwise.
    The caller holds the group's row lock for writes, so member changes of one group are serial."""

    async def resource_types_of(
        self, conn: AsyncConnection, tenant_id: str, ids: Sequence[str]
    ) -> dict[str, str]:
        """Each existing id among `ids` with its resource type (missing ids are absent)."""
        ...

    async def member_ids(self, conn: AsyncConnection, tenant_id: str, group_id: str) -> set[str]:
        """Every member id of the group."""
        ...

    async def existing_member_ids(
        self, conn: AsyncConnection, tenant_id: str, group_id: str, ids: Sequence[str]
    ) -> set[str]:
        """The ids among `ids` that are members of the group."""
        ...

    async def add_new_members(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        group_id: str,
        members: Sequence[tuple[str, str, str | None]],
    ) -> set[str]:
        """Insert the (member id, type, display) rows not yet there; the ids inserted."""
        ...

    async def remove_members(
        self, conn: AsyncConnection, tenant_id: str, group_id: str, ids: Sequence[str]
    ) -> int:
        """Delete those members' rows; how many there were."""
        ...

    async def remove_all_members(self, conn: AsyncConnection, tenant_id: str, group_id: str) -> list[str]:
        """Delete every member row of the group; the ids removed."""
        ...

    async def groups_containing(self, conn: AsyncConnection, tenant_id: str, member_id: str) -> list[str]:
        """The groups the resource is directly a member of."""
        ...

    async def list_members(
        self, conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
    ) -> list[tuple[str, str, str, str]]:
        """(group id, member id, member type, display) of the groups' members, in member order."""
        ...

    def iter_members(
        self, conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str], *, batch: int = 5000
    ) -> AsyncIterator[tuple[str, str, str, str]]:
        """`list_members` streamed in batches: a group of any size is never held in memory."""
        ...

    async def run_with_member_loader(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        group_id: str,
        work: Callable[[Callable[[], list[dict[str, Any]]]], _T],
    ) -> _T:
        """Run the synchronous `work` (the PATCH engine) with a loader of the group's members as
        `{"value", "type"}` dicts, read only if called."""
        ...

    async def change_members_at_once(
        self,
        engine: AsyncEngine,
        *,
        tenant_id: str,
        group_id: str,
        add: dict[str, str | None],
        remove_ids: Sequence[str],
        ignore_unknown: bool,
        at: str,
        actor: str | None,
    ) -> MemberChange:
        """Add (id -> display as sent) and remove members, bump the group's version and append
        `member_added` / `member_removed`, atomically, without a transaction of the caller's (one
        statement on PostgreSQL, one call on SQLite). Nothing is written when an id to add does
        not exist (unless `ignore_unknown`), is the group itself, the group is not stored, or the
        tenant maps any group to a role (`applied` False; the role events of a change are the
        locked path's); nothing changed: `version` None."""
        ...


class MemberGroups(Protocol):
    """The groups resources belong to, from `group_members` (a user's derived `groups`)."""

    async def direct_groups(
        self, conn: AsyncConnection, tenant_id: str, member_ids: Sequence[str]
    ) -> list[tuple[str, str, str]]:
        """(member id, group id, group displayName) of the groups directly containing each."""
        ...

    async def read_direct_groups(
        self, engine: AsyncEngine, tenant_id: str, member_ids: Sequence[str]
    ) -> list[tuple[str, str, str]]:
        """`direct_groups` outside any transaction, in one statement."""
        ...

    async def parent_groups(
        self, conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
    ) -> dict[str, list[str]]:
        """The groups directly containing each group (one step of nested-group expansion)."""
        ...

    async def display_names(
        self, conn: AsyncConnection, tenant_id: str, ids: Sequence[str]
    ) -> dict[str, str]:
        """Each existing group's displayName."""
        ...


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


class RequestLog(Protocol):
    """The request log and the unknown-attribute counts: diagnostics, append-mostly."""

    async def insert_rows(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Append a batch of rows in the caller's transaction."""
        ...

    async def read_requests(
        self, conn: AsyncConnection, after: int, limit: int, where: RequestFilter | None = None
    ) -> list[dict[str, Any]]:
        """Rows with id > `after`, in id order (insertion order within a worker)."""
        ...

    async def prune(self, conn: AsyncConnection, older_than: str) -> int:
        """Delete the rows logged before `older_than`; how many."""
        ...

    async def add_unknown_counts(
        self, conn: AsyncConnection, counts: dict[tuple[str, str], UnknownCount]
    ) -> None:
        """Fold the counts in, upserting in (tenant, name) order: concurrent writers cannot deadlock."""
        ...

    async def read_unknown_counts(self, conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
        """A tenant's unknown attributes, the most frequent first, then by name."""
        ...
