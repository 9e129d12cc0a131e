"""Rows of group-to-role mappings and of the background jobs that apply them (docs/roles.md).

Every query here is bounded by what it names: one tenant's mappings (a small list), the groups of
a few members, or one batch of a group's members after a cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.storage.kind import backend
from provisor.storage.tables import group_members, resources, role_jobs, role_mappings

_m = role_mappings.c
_j = role_jobs.c


@dataclass(frozen=True)
class Mapping:
    kind: str  # "id" | "name"
    group_ref: str  # a group id, or a lower-cased displayName
    role: str


@dataclass(frozen=True)
class RoleJob:
    tenant_id: str
    id: str
    action: str  # "map" | "unmap"
    kind: str
    group_ref: str
    group_id: str
    role: str
    cursor: str | None
    processed: int
    total: int
    state: str
    created: str
    updated: str


async def mappings(conn: AsyncConnection, tenant_id: str) -> list[Mapping]:
    rows = await conn.execute(
        select(_m.kind, _m.group_ref, _m.role)
        .where(_m.tenant_id == tenant_id)
        .order_by(_m.role, _m.kind, _m.group_ref)
    )
    return [Mapping(r[0], r[1], r[2]) for r in rows]


async def add_mapping(conn: AsyncConnection, tenant_id: str, mapping: Mapping, at: str) -> bool:
    """True when the mapping is new."""
    key = (_m.tenant_id == tenant_id, _m.kind == mapping.kind, _m.group_ref == mapping.group_ref)
    exists = await conn.execute(select(_m.role).where(*key, _m.role == mapping.role))
    if exists.first() is not None:
        return False
    await conn.execute(
        insert(role_mappings).values(
            tenant_id=tenant_id, kind=mapping.kind, group_ref=mapping.group_ref, role=mapping.role, created=at
        )
    )
    return True


async def remove_mapping(conn: AsyncConnection, tenant_id: str, mapping: Mapping) -> bool:
    result = await conn.execute(
        delete(role_mappings).where(
            _m.tenant_id == tenant_id,
            _m.kind == mapping.kind,
            _m.group_ref == mapping.group_ref,
            _m.role == mapping.role,
        )
    )
    return bool(result.rowcount)


async def groups_of(conn: AsyncConnection, tenant_id: str, member_ids: Sequence[str]) -> dict[str, set[str]]:
    """The groups that directly contain each member (users or groups)."""
    out: dict[str, set[str]] = {}
    ids = list(member_ids)
    for start in range(0, len(ids), 500):
        rows = await conn.execute(
            select(group_members.c.member_id, group_members.c.group_id).where(
                group_members.c.tenant_id == tenant_id,
                group_members.c.member_id.in_(ids[start : start + 500]),
            )
        )
        for member, group in rows:
            out.setdefault(member, set()).add(group)
    return out


async def group_names(conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]) -> dict[str, str]:
    """Lower-cased displayName of each existing group."""
    out: dict[str, str] = {}
    ids = list(group_ids)
    for start in range(0, len(ids), 500):
        rows = await conn.execute(
            select(resources.c.id, resources.c.doc["displayName"].as_string()).where(
                resources.c.tenant_id == tenant_id,
                resources.c.resource_type == "Group",
                resources.c.id.in_(ids[start : start + 500]),
            )
        )
        out.update({r[0]: (r[1] or "").lower() for r in rows})
    return out


async def group_by_name(conn: AsyncConnection, tenant_id: str, name: str) -> list[str]:
    """Ids of the groups whose displayName equals `name`, ignoring case."""
    rows = await conn.execute(
        select(resources.c.id).where(
            resources.c.tenant_id == tenant_id,
            resources.c.resource_type == "Group",
            func.lower(resources.c.doc["displayName"].as_string()) == name.lower(),
        )
    )
    return [r[0] for r in rows]


async def resource_type_of(conn: AsyncConnection, tenant_id: str, resource_id: str) -> str | None:
    row = await conn.execute(
        select(resources.c.resource_type).where(
            resources.c.tenant_id == tenant_id, resources.c.id == resource_id
        )
    )
    found = row.first()
    return None if found is None else str(found[0])


async def lock_users(conn: AsyncConnection, tenant_id: str, user_ids: Sequence[str]) -> None:
    """PostgreSQL: lock the users' rows, in id order (no deadlock between two such lockers), so
    that two transactions changing one user's groups compute its roles one after the other, the
    second seeing the first's committed rows. SQLite's writers are serialised already."""
    if not backend(conn).row_locks or not user_ids:
        return
    ids = sorted(set(user_ids))
    for start in range(0, len(ids), 1000):
        await conn.execute(
            select(resources.c.id)
            .where(resources.c.tenant_id == tenant_id, resources.c.id.in_(ids[start : start + 1000]))
            .order_by(resources.c.id)
            .with_for_update()
        )


async def members_after(
    conn: AsyncConnection, tenant_id: str, group_id: str, after: str | None, limit: int
) -> list[tuple[str, str]]:
    """(member_id, member_type) of one group in id order after `after`: a job's next batch."""
    query = select(group_members.c.member_id, group_members.c.member_type).where(
        group_members.c.tenant_id == tenant_id, group_members.c.group_id == group_id
    )
    if after is not None:
        query = query.where(group_members.c.member_id > after)
    rows = await conn.execute(query.order_by(group_members.c.member_id).limit(limit))
    return [(r[0], r[1]) for r in rows]


async def members_of_groups(
    conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
) -> list[tuple[str, str]]:
    """(member_id, member_type) of every direct member of the given groups."""
    out: list[tuple[str, str]] = []
    ids = list(group_ids)
    for start in range(0, len(ids), 500):
        rows = await conn.execute(
            select(group_members.c.member_id, group_members.c.member_type).where(
                group_members.c.tenant_id == tenant_id, group_members.c.group_id.in_(ids[start : start + 500])
            )
        )
        out.extend((r[0], r[1]) for r in rows)
    return out


async def member_count(conn: AsyncConnection, tenant_id: str, group_id: str) -> int:
    row = await conn.execute(
        select(func.count()).where(
            group_members.c.tenant_id == tenant_id, group_members.c.group_id == group_id
        )
    )
    return int(row.scalar_one())


def _job(row: Any) -> RoleJob:
    return RoleJob(*(row[c.name] for c in role_jobs.c))


async def create_job(conn: AsyncConnection, job: RoleJob) -> None:
    await conn.execute(insert(role_jobs).values(**{c.name: getattr(job, c.name) for c in role_jobs.c}))


async def jobs(conn: AsyncConnection, tenant_id: str) -> list[RoleJob]:
    rows = await conn.execute(select(role_jobs).where(_j.tenant_id == tenant_id).order_by(_j.created, _j.id))
    return [_job(r._mapping) for r in rows]


async def running_jobs(conn: AsyncConnection, limit: int = 10) -> list[tuple[str, str]]:
    """(tenant, id) of unfinished jobs, oldest first, across tenants."""
    rows = await conn.execute(
        select(_j.tenant_id, _j.id).where(_j.state == "running").order_by(_j.created).limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


async def running_jobs_on(conn: AsyncConnection, tenant_id: str, group_id: str) -> list[RoleJob]:
    """The unfinished jobs over one group's members (usually none)."""
    rows = await conn.execute(
        select(role_jobs).where(_j.state == "running", _j.tenant_id == tenant_id, _j.group_id == group_id)
    )
    return [_job(r._mapping) for r in rows]


async def lock_job(conn: AsyncConnection, tenant_id: str, job_id: str) -> RoleJob | None:
    query = select(role_jobs).where(_j.tenant_id == tenant_id, _j.id == job_id)
    if backend(conn).row_locks:
        query = query.with_for_update(skip_locked=True)
    row = (await conn.execute(query)).first()
    return None if row is None else _job(row._mapping)


async def advance_job(
    conn: AsyncConnection,
    tenant_id: str,
    job_id: str,
    *,
    cursor: str | None,
    processed: int,
    done: bool,
    at: str,
) -> None:
    await conn.execute(
        update(role_jobs)
        .where(_j.tenant_id == tenant_id, _j.id == job_id)
        .values(cursor=cursor, processed=processed, state="done" if done else "running", updated=at)
    )
