"""Group membership: a group's member rows and the groups a resource belongs to
(storage/members.py); the roles and entitlements derived from and assigned to it
(storage/roles.py, storage/entitlements.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.entitlements import CatalogueEntry
from provisor.storage.members import MemberChange
from provisor.storage.roles import Mapping, RoleJob

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

    async def members_page(
        self, conn: AsyncConnection, tenant_id: str, group_id: str, *, after: str | None, limit: int
    ) -> list[tuple[str, str, str, str]]:
        """One page of a group's members in member-id order after `after` (the console pages through
        groups of any size this way)."""
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


class Roles(Protocol):
    """Group-to-role mappings and what they are computed from (a user's roles come from the groups
    it is in, nested groups included), and the jobs that recompute a large group's members in
    batches; in the caller's transaction."""

    async def mappings(self, conn: AsyncConnection, tenant_id: str) -> list[Mapping]:
        """The tenant's group-to-role mappings, by role, kind and group reference."""
        ...

    async def add_mapping(self, conn: AsyncConnection, tenant_id: str, mapping: Mapping, at: str) -> bool:
        """Store the mapping; True when it is new (False: it was there already)."""
        ...

    async def remove_mapping(self, conn: AsyncConnection, tenant_id: str, mapping: Mapping) -> bool:
        """Delete one mapping; False when there was none."""
        ...

    async def group_by_name(self, conn: AsyncConnection, tenant_id: str, name: str) -> list[str]:
        """Ids of the groups whose displayName equals `name`, ignoring case."""
        ...

    async def group_names(
        self, conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
    ) -> dict[str, str]:
        """Lower-cased displayName of each existing group."""
        ...

    async def groups_of(
        self, conn: AsyncConnection, tenant_id: str, member_ids: Sequence[str]
    ) -> dict[str, set[str]]:
        """The groups that directly contain each member (users or groups)."""
        ...

    async def resource_type_of(self, conn: AsyncConnection, tenant_id: str, resource_id: str) -> str | None:
        """The resource's type, None when it is not stored."""
        ...

    async def member_count(self, conn: AsyncConnection, tenant_id: str, group_id: str) -> int:
        """How many direct members the group has (whether a role change runs as a job)."""
        ...

    async def members_after(
        self, conn: AsyncConnection, tenant_id: str, group_id: str, after: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """(member_id, member_type) of one group in id order after `after`: a job's next batch."""
        ...

    async def members_of_groups(
        self, conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
    ) -> list[tuple[str, str]]:
        """(member_id, member_type) of every direct member of the given groups."""
        ...

    async def lock_users(self, conn: AsyncConnection, tenant_id: str, user_ids: Sequence[str]) -> None:
        """PostgreSQL: lock the users' rows, in id order (no deadlock between two such lockers), so
        that two transactions changing one user's groups compute its roles one after the other, the
        second seeing the first's committed rows. SQLite's writers are serialised already."""
        ...

    async def create_job(self, conn: AsyncConnection, job: RoleJob) -> None:
        """Store a new role job (a recomputation over one group's members, done in batches)."""
        ...

    async def lock_job(self, conn: AsyncConnection, tenant_id: str, job_id: str) -> RoleJob | None:
        """The job, its row held until the transaction ends; None when unknown or (PostgreSQL)
        held by another worker, which is advancing it."""
        ...

    async def advance_job(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        job_id: str,
        *,
        cursor: str | None,
        processed: int,
        done: bool,
        at: str,
    ) -> None:
        """Record a job's progress after a batch: its cursor, count, and whether it is done."""
        ...

    async def jobs(self, conn: AsyncConnection, tenant_id: str) -> list[RoleJob]:
        """The tenant's role jobs, oldest first."""
        ...

    async def running_jobs(self, conn: AsyncConnection, limit: int = 10) -> list[tuple[str, str]]:
        """(tenant, id) of unfinished jobs, oldest first, across tenants."""
        ...

    async def running_jobs_on(self, conn: AsyncConnection, tenant_id: str, group_id: str) -> list[RoleJob]:
        """The unfinished jobs over one group's members (usually none)."""
        ...


class Entitlements(Protocol):
    """A tenant's catalogue (docs/entitlements.md) of `Entitlement` and `Role` entries, per type;
    in the caller's transaction."""

    async def define(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        resource_type: str,
        entry_id: str,
        display_name: str,
        type_: str | None,
        description: str | None,
        at: str,
    ) -> bool:
        """Insert or replace one entry; True when it was new."""
        ...

    async def get(
        self, conn: AsyncConnection, tenant_id: str, resource_type: str, entry_id: str
    ) -> CatalogueEntry | None:
        """One catalogue entry, None when it is not defined."""
        ...

    async def page(
        self, conn: AsyncConnection, tenant_id: str, resource_type: str, offset: int, limit: int | None
    ) -> list[CatalogueEntry]:
        """Entries in id order; `limit` None reads them all (a filtered list filters in Python)."""
        ...

    async def count(self, conn: AsyncConnection, tenant_id: str, resource_type: str) -> int:
        """How many entries the tenant's catalogue of `resource_type` holds."""
        ...

    async def remove(self, conn: AsyncConnection, tenant_id: str, resource_type: str, entry_id: str) -> bool:
        """Delete one entry; False when there was none."""
        ...
