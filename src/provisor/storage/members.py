"""Group membership rows. Every statement touches only the rows it names: O(k) for k members.

The statements that differ per database (a list of ids as one array or one JSON text, and the
member change as one statement or one call in SQLite's thread) are the `Backend.members` part
(`storage/members_sql.py` declares it; `storage/postgres/members.py`, `storage/sqlite/members.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import and_, delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.direct import BY_KEY_ROWS, execute, reader
from provisor.storage.kind import backend
from provisor.storage.members_sql import DISPLAY
from provisor.storage.members_sql import MemberChange as MemberChange  # the callers' name for it
from provisor.storage.tables import group_members, resources

T = TypeVar("T")

#: Bound-parameter batches stay below SQLite's and asyncpg's parameter limits.
CHUNK = 500


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def resource_types_of(conn: AsyncConnection, tenant_id: str, ids: Sequence[str]) -> dict[str, str]:
    """Map each existing id among `ids` to its resource type (missing ids are absent)."""
    if not ids:
        return {}
    rows = await execute(conn, backend(conn).members.types_of, {"tenant_id": tenant_id, "ids": list(ids)})
    return {row[0]: row[1] for row in rows}


async def member_ids(conn: AsyncConnection, tenant_id: str, group_id: str) -> set[str]:
    """Every member id of one group: for a PUT, which replaces the whole list."""
    rows = await conn.execute(
        select(group_members.c.member_id).where(
            group_members.c.tenant_id == tenant_id, group_members.c.group_id == group_id
        )
    )
    return {row[0] for row in rows}


async def run_with_member_loader(
    conn: AsyncConnection,
    tenant_id: str,
    group_id: str,
    work: Callable[[Callable[[], list[dict[str, Any]]]], T],
) -> T:
    """Run the synchronous `work` in the connection's context, handing it a loader of the
    group's members as `{"value", "type"}` dicts.

    The PATCH engine is synchronous and needs the member list only for operations that filter
    or replace members; the loader reads it when called, so a PATCH that never asks costs no read
    of a large group.
    """

    def run(sync_conn: Connection) -> T:
        def load() -> list[dict[str, Any]]:
            rows = sync_conn.execute(
                select(group_members.c.member_id, group_members.c.member_type).where(
                    group_members.c.tenant_id == tenant_id, group_members.c.group_id == group_id
                )
            )
            return [{"value": r[0], "type": r[1]} for r in rows]

        return work(load)

    return await conn.run_sync(run)


async def existing_member_ids(
    conn: AsyncConnection, tenant_id: str, group_id: str, ids: Sequence[str]
) -> set[str]:
    if not ids:
        return set()
    params = {"tenant_id": tenant_id, "group_id": group_id, "ids": list(ids)}
    return {row[0] for row in await execute(conn, backend(conn).members.existing, params)}


async def add_new_members(
    conn: AsyncConnection, tenant_id: str, group_id: str, members: Sequence[tuple[str, str, str | None]]
) -> set[str]:
    """Insert the (member_id, member_type, display) rows that are not members yet; their ids."""
    if not members:
        return set()
    part = backend(conn).members
    params = part.add_new_params(tenant_id, group_id, members)
    return {row[0] for row in await execute(conn, part.add_new, params)}


async def remove_members(conn: AsyncConnection, tenant_id: str, group_id: str, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    params = {"tenant_id": tenant_id, "group_id": group_id, "ids": list(ids)}
    return len(await execute(conn, backend(conn).members.remove, params))


async def remove_all_members(conn: AsyncConnection, tenant_id: str, group_id: str) -> list[str]:
    return [
        row[0]
        for row in await conn.execute(
            delete(group_members)
            .where(group_members.c.tenant_id == tenant_id, group_members.c.group_id == group_id)
            .returning(group_members.c.member_id)
        )
    ]


async def groups_containing(conn: AsyncConnection, tenant_id: str, member_id: str) -> list[str]:
    rows = await conn.execute(
        select(group_members.c.group_id).where(
            group_members.c.tenant_id == tenant_id, group_members.c.member_id == member_id
        )
    )
    return [row[0] for row in rows]


def _members_query(tenant_id: str, group_ids: Sequence[str]) -> Any:
    return (
        select(
            group_members.c.group_id,
            group_members.c.member_id,
            group_members.c.member_type,
            func.coalesce(group_members.c.display, DISPLAY),
        )
        .join(
            resources,
            and_(
                resources.c.tenant_id == group_members.c.tenant_id,
                resources.c.id == group_members.c.member_id,
            ),
        )
        .where(group_members.c.tenant_id == tenant_id, group_members.c.group_id.in_(list(group_ids)))
        .order_by(group_members.c.group_id, group_members.c.member_id)
    )


async def iter_members(
    conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str], *, batch: int = 5000
) -> AsyncIterator[tuple[str, str, str, str]]:
    """Stream (group_id, member_id, member_type, display) in member order, from a server-side
    cursor (PostgreSQL needs the caller to hold a transaction for that)."""
    result = await conn.stream(_members_query(tenant_id, group_ids).execution_options(yield_per=batch))
    async for row in result:
        yield row[0], row[1], row[2], row[3]


async def list_members(
    conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
) -> list[tuple[str, str, str, str]]:
    """Like `iter_members`, materialised: for pages of groups, which are rendered whole anyway."""
    rows = await conn.execute(_members_query(tenant_id, group_ids))
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def direct_groups(
    conn: AsyncConnection, tenant_id: str, member_ids: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(member_id, group_id, group display) for groups that directly contain the given members."""
    query = (
        select(group_members.c.member_id, group_members.c.group_id, DISPLAY)
        .join(
            resources,
            and_(
                resources.c.tenant_id == group_members.c.tenant_id, resources.c.id == group_members.c.group_id
            ),
        )
        .where(group_members.c.tenant_id == tenant_id, group_members.c.member_id.in_(list(member_ids)))
        .order_by(group_members.c.member_id, DISPLAY, group_members.c.group_id)
    )
    return [(r[0], r[1], r[2]) for r in await conn.execute(query)]


async def read_direct_groups(
    engine: AsyncEngine, tenant_id: str, member_ids: Sequence[str]
) -> list[tuple[str, str, str]]:
    """`direct_groups` outside any transaction, on the driver connection (storage/direct.py)."""
    statement = backend(engine).members.direct_groups
    params = {"tenant_id": tenant_id, "ids": list(member_ids)}
    rows = await reader(engine).fetch(statement, params, by_key=len(member_ids) <= BY_KEY_ROWS)
    return [(r[0], r[1], r[2]) for r in rows]


async def parent_groups(
    conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Group ids that directly contain each of `group_ids` (for nested-group expansion)."""
    out: dict[str, list[str]] = {}
    for chunk in _chunks(list(group_ids)):
        rows = await conn.execute(
            select(group_members.c.member_id, group_members.c.group_id).where(
                group_members.c.tenant_id == tenant_id, group_members.c.member_id.in_(chunk)
            )
        )
        for member, group in rows:
            out.setdefault(member, []).append(group)
    return out


async def display_names(conn: AsyncConnection, tenant_id: str, ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in _chunks(list(ids)):
        rows = await conn.execute(
            select(resources.c.id, DISPLAY).where(
                resources.c.tenant_id == tenant_id, resources.c.id.in_(chunk)
            )
        )
        out.update({r[0]: r[1] for r in rows})
    return out


async def change_members_at_once(
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
    """Add members (id -> display as sent) and remove members of one group, bump its version and
    record `member_added` / `member_removed`, atomically and without a transaction's round trips:
    one statement on PostgreSQL, one call in the connection's thread on SQLite. Nothing is written
    when an id to add does not exist (unless `ignore_unknown`), is the group itself, or the tenant
    maps any group to a role: the role mappings are checked in that statement (or call), not in one
    of their own, which had doubled a push's CPU."""
    return await backend(engine).members.change_at_once(
        engine,
        tenant_id=tenant_id,
        group_id=group_id,
        add=add,
        remove_ids=remove_ids,
        ignore_unknown=ignore_unknown,
        at=at,
        actor=actor,
    )


async def members_page(
    conn: AsyncConnection, tenant_id: str, group_id: str, *, after: str | None, limit: int
) -> list[tuple[str, str, str, str]]:
    """One page of a group's members in member-id order after `after` (the console pages through
    groups of any size this way)."""
    query = _members_query(tenant_id, [group_id])
    if after:
        query = query.where(group_members.c.member_id > after)
    rows = await conn.execute(query.limit(limit))
    return [(row[0], row[1], row[2], row[3]) for row in rows]
