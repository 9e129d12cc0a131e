"""Group membership: a group's member rows and the groups a resource belongs to
(storage/members.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.members import MemberChange

_T = TypeVar("_T")


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
        not exist (unless `ignore_unknown`), is the group itself, or the group is not stored
        (`applied` False); nothing changed: `version` None."""
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
