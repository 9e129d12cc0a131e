"""Application roles derived from group membership (docs/roles.md).

A tenant maps groups (by id, or by displayName) to roles; a user's effective roles are the union
over its groups (and their ancestors when the tenant's `indirect_groups` is on). Every write that
changes someone's effective roles records `role_granted` / `role_revoked` events in its own
transaction. The delta is computed for the users the write touches only: both the state after the
change (read from the database) and the state before it (the same reads with the change undone
in memory, a `View`), so a member add costs the added member's groups, whatever the group's size.
Mapping or unmapping a group runs over its members in batches (`run_job_step`), each batch
committed with its cursor, so a restarted worker resumes where the last batch ended.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from provisor.clock import now
from provisor.errors import invalid_value, not_found
from provisor.events.model import EventOp, event_row
from provisor.service.context import RequestContext
from provisor.storage import batch as batch_store
from provisor.storage import members as member_store
from provisor.storage import roles as role_store
from provisor.storage import tenants as tenant_store
from provisor.storage.handles import AsyncConnection, AsyncEngine
from provisor.storage.interfaces import Batches, Members, Tenants
from provisor.storage.interfaces import Roles as RoleStorage
from provisor.storage.roles import Mapping, RoleJob
from provisor.storage.transactions import read_transaction, write_transaction

#: Storage as the contract names it (storage/interfaces/; `Roles` here is a user's roles).
_store: RoleStorage = role_store
_members: Members = member_store
_batches: Batches = batch_store
_tenants: Tenants = tenant_store

#: Members per background batch: one transaction each.
DEFAULT_BATCH = 1000
MAX_ROLE_LENGTH = 200
MAX_GROUP_LENGTH = 500

Roles = dict[str, set[str]]  # role -> the groups that grant it


@dataclass
class View:
    """The database with some changes undone (or applied) in memory."""

    mappings: list[Mapping]
    hidden: set[tuple[str, str]] = field(default_factory=set)  # (group, member) edges to ignore
    extra: set[tuple[str, str]] = field(default_factory=set)  # (group, member) edges to add
    names: dict[str, str] = field(default_factory=dict)  # group id -> lower-cased displayName
    gone: set[str] = field(default_factory=set)  # groups treated as deleted

    def adjust(self, found: dict[str, set[str]], ids: Iterable[str]) -> dict[str, set[str]]:
        out = {i: set(found.get(i, ())) for i in ids}
        for group, member in self.hidden:
            if member in out:
                out[member].discard(group)
        for group, member in self.extra:
            if member in out:
                out[member].add(group)
        for groups in out.values():
            groups -= self.gone
        return out


async def roles_of(
    conn: AsyncConnection, ctx: RequestContext, user_ids: list[str], view: View
) -> dict[str, Roles]:
    """Each user's effective roles under `view`."""
    if not user_ids or not view.mappings:
        return {u: {} for u in user_ids}
    direct = view.adjust(await _store.groups_of(conn, ctx.tenant_id, user_ids), user_ids)
    closure = {u: set(gs) for u, gs in direct.items()}
    if ctx.setting("indirect_groups", False):
        parents: dict[str, set[str]] = {}
        frontier = set().union(*direct.values()) if direct else set()
        while frontier:
            found = view.adjust(await _store.groups_of(conn, ctx.tenant_id, list(frontier)), frontier)
            parents.update(found)
            frontier = {p for ps in found.values() for p in ps if p not in parents}
        for groups in closure.values():
            todo = list(groups)
            while todo:
                for parent in parents.get(todo.pop(), ()):
                    if parent not in groups:
                        groups.add(parent)
                        todo.append(parent)
    by_id: dict[str, set[str]] = {}
    by_name: dict[str, set[str]] = {}
    for m in view.mappings:
        (by_id if m.kind == "id" else by_name).setdefault(m.group_ref, set()).add(m.role)
    names: dict[str, str] = {}
    if by_name:
        every = set().union(*closure.values()) if closure else set()
        names = await _store.group_names(conn, ctx.tenant_id, list(every))
        names.update({g: n for g, n in view.names.items() if g in every})
    out: dict[str, Roles] = {}
    for user, groups in closure.items():
        roles: Roles = {}
        for group in groups:
            for role in by_id.get(group, set()) | by_name.get(names.get(group, "\0"), set()):
                roles.setdefault(role, set()).add(group)
        out[user] = roles
    return out


async def _emit(
    conn: AsyncConnection,
    ctx: RequestContext,
    before: dict[str, Roles],
    after: dict[str, Roles],
    cause: str | None,
) -> int:
    """`role_granted` / `role_revoked` for every difference; the group named is `cause` when it
    is among the groups that granted (or had granted) the role. The number of events."""
    at = now()
    rows: list[dict[str, Any]] = []
    for user in sorted(set(before) | set(after)):
        was, now_ = before.get(user, {}), after.get(user, {})
        changes = [(EventOp.ROLE_GRANTED, r, now_[r]) for r in sorted(set(now_) - set(was))]
        changes += [(EventOp.ROLE_REVOKED, r, was[r]) for r in sorted(set(was) - set(now_))]
        for op, role, groups in changes:
            group = cause if cause in groups else min(groups)
            rows.append(
                event_row(
                    tenant_id=ctx.tenant_id,
                    at=at,
                    resource_type="User",
                    resource_id=user,
                    op=op,
                    version=None,
                    actor=ctx.actor,
                    payload={"role": role, "group": group},
                )
            )
    if rows:  # one multi-row statement: a batch of a map job records up to a thousand
        await _batches.append_events(conn, rows)
    return len(rows)


async def users_under(conn: AsyncConnection, ctx: RequestContext, member_ids: Iterable[str]) -> list[str]:
    """The users among `member_ids`, plus (with `indirect_groups`) the users below the groups
    among them: the users whose roles a change of those memberships can affect."""
    ids = list(dict.fromkeys(member_ids))
    types = await _members.resource_types_of(conn, ctx.tenant_id, ids) if ids else {}
    users = [i for i in ids if types.get(i) == "User"]
    groups = [i for i in ids if types.get(i) == "Group"]
    if groups and ctx.setting("indirect_groups", False):
        seen = set(groups)
        frontier = groups
        while frontier:
            rows = await _store.members_of_groups(conn, ctx.tenant_id, frontier)
            frontier = []
            for member, kind in rows:
                if kind == "User":
                    users.append(member)
                elif member not in seen:
                    seen.add(member)
                    frontier.append(member)
    return list(dict.fromkeys(users))


async def membership_changed(
    conn: AsyncConnection, ctx: RequestContext, group_id: str, added: list[str], removed: list[str]
) -> None:
    """After `added` joined and `removed` left `group_id` (already written).

    A member past the cursor of a running map (unmap) job on this group is the job's to grant
    (revoke): for it, that job's mapping counts as not yet made (still there), before and after."""
    if not (added or removed):
        return
    mappings = await _store.mappings(conn, ctx.tenant_id)
    pending = await _store.running_jobs_on(conn, ctx.tenant_id, group_id)
    if not mappings and not pending:
        return
    parts: dict[tuple[str, ...], list[str]] = {}
    for member in [*added, *removed]:
        ahead = tuple(j.id for j in pending if j.cursor is None or member > j.cursor)
        parts.setdefault(ahead, []).append(member)
    for ahead, members in parts.items():
        effective = list(mappings)
        for job in pending:
            if job.id in ahead:
                mapping = Mapping(job.kind, job.group_ref, job.role)
                effective = [m for m in effective if m != mapping]
                if job.action == "unmap":
                    effective.append(mapping)
        users = await users_under(conn, ctx, members)
        await _store.lock_users(conn, ctx.tenant_id, users)
        after = await roles_of(conn, ctx, users, View(effective))
        before_view = View(
            effective, hidden={(group_id, m) for m in added}, extra={(group_id, m) for m in removed}
        )
        before = await roles_of(conn, ctx, users, before_view)
        await _emit(conn, ctx, before, after, group_id)


async def _users_of_group(conn: AsyncConnection, ctx: RequestContext, group_id: str) -> list[str]:
    direct = await _store.members_of_groups(conn, ctx.tenant_id, [group_id])
    return await users_under(conn, ctx, [m for m, _ in direct])


async def group_renamed(
    conn: AsyncConnection, ctx: RequestContext, group_id: str, old: str | None, new: str | None
) -> None:
    """After a group's displayName changed from `old` to `new` (already written)."""
    old_l, new_l = (old or "").lower(), (new or "").lower()
    if old_l == new_l:
        return
    mappings = await _store.mappings(conn, ctx.tenant_id)
    if not any(m.kind == "name" and m.group_ref in (old_l, new_l) for m in mappings):
        return
    users = await _users_of_group(conn, ctx, group_id)
    await _store.lock_users(conn, ctx.tenant_id, users)
    after = await roles_of(conn, ctx, users, View(mappings))
    before = await roles_of(conn, ctx, users, View(mappings, names={group_id: old_l}))
    await _emit(conn, ctx, before, after, group_id)


async def group_deleting(conn: AsyncConnection, ctx: RequestContext, group_id: str) -> None:
    """Before a group is deleted: its members lose what only it granted."""
    mappings = await _store.mappings(conn, ctx.tenant_id)
    if not mappings:
        return
    users = await _users_of_group(conn, ctx, group_id)
    await _store.lock_users(conn, ctx.tenant_id, users)
    before = await roles_of(conn, ctx, users, View(mappings))
    after = await roles_of(conn, ctx, users, View(mappings, gone={group_id}))
    await _emit(conn, ctx, before, after, group_id)


async def user_deleting(conn: AsyncConnection, ctx: RequestContext, user_id: str) -> None:
    """Before a user is deleted: every role it had is revoked."""
    mappings = await _store.mappings(conn, ctx.tenant_id)
    if not mappings:
        return
    before = await roles_of(conn, ctx, [user_id], View(mappings))
    await _emit(conn, ctx, before, {user_id: {}}, None)


def roles_json(roles: Roles) -> dict[str, Any]:
    return {"roles": [{"role": r, "groups": sorted(gs)} for r, gs in sorted(roles.items())]}


def mapping_json(m: Mapping) -> dict[str, Any]:
    return {"group": m.group_ref, "by": "id" if m.kind == "id" else "displayName", "role": m.role}


def job_json(job: RoleJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "action": job.action,
        "group": job.group_id,
        "role": job.role,
        "state": job.state,
        "processed": job.processed,
        "total": job.total,
        "created": job.created,
        "updated": job.updated,
    }


async def _context(conn: AsyncConnection, tenant_id: str, actor: str | None) -> RequestContext:
    return RequestContext(tenant_id, actor, "", await _tenants.get_settings(conn, tenant_id))


async def _require_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    if not await _tenants.tenant_exists(conn, tenant_id):
        raise not_found(f"no tenant {tenant_id}")


def _check(group: str, role: str) -> None:
    if not group.strip() or len(group) > MAX_GROUP_LENGTH:
        raise invalid_value(f"a group is its id or displayName, 1-{MAX_GROUP_LENGTH} characters")
    if not role.strip() or len(role) > MAX_ROLE_LENGTH:
        raise invalid_value(f"a role is 1-{MAX_ROLE_LENGTH} characters")


async def _mapping_for(
    conn: AsyncConnection, tenant_id: str, group: str, role: str
) -> tuple[Mapping, list[str]]:
    """The mapping `group` names (an existing group's id, else a displayName) and the groups it covers."""
    if await _store.resource_type_of(conn, tenant_id, group) == "Group":
        return Mapping("id", group, role), [group]
    return Mapping("name", group.lower(), role), await _store.group_by_name(conn, tenant_id, group)


@dataclass(frozen=True)
class MapResult:
    changed: bool  # False: the mapping already existed (map) or did not exist (unmap)
    mapping: Mapping
    jobs: list[RoleJob]


async def change_mapping(
    engine: AsyncEngine,
    tenant_id: str,
    group: str,
    role: str,
    *,
    add: bool,
    actor: str | None = None,
    batch: int = DEFAULT_BATCH,
) -> MapResult:
    """Map (or unmap) a group to a role; one job per covered group grants (revokes) the role to its
    members. A group no larger than one batch is done in this transaction; a larger one is left to
    the background worker (`run_job_step`)."""
    _check(group, role)
    at = now()
    async with write_transaction(engine) as conn:
        await _require_tenant(conn, tenant_id)
        mapping, groups = await _mapping_for(conn, tenant_id, group, role)
        if not add:
            existing = set(await _store.mappings(conn, tenant_id))
            if mapping not in existing and Mapping("name", group.lower(), role) in existing:
                mapping = Mapping("name", group.lower(), role)
                groups = await _store.group_by_name(conn, tenant_id, group)
        if add:
            changed = await _store.add_mapping(conn, tenant_id, mapping, at)
        else:
            changed = await _store.remove_mapping(conn, tenant_id, mapping)
        jobs: list[RoleJob] = []
        if changed:
            for group_id in groups:
                total = await _store.member_count(conn, tenant_id, group_id)
                job = RoleJob(
                    tenant_id, str(uuid.uuid4()), "map" if add else "unmap", mapping.kind,
                    mapping.group_ref, group_id, role, None, 0, total, "running", at, at,
                )  # fmt: skip
                await _store.create_job(conn, job)
                if total <= batch:
                    job = await _step(conn, job, total + 1, actor)
                jobs.append(job)
    return MapResult(changed, mapping, jobs)


async def _step(conn: AsyncConnection, job: RoleJob, batch: int, actor: str | None) -> RoleJob:
    """One batch of a job, inside the caller's transaction: events, then the cursor advance."""
    ctx = await _context(conn, job.tenant_id, actor)
    rows = await _store.members_after(conn, job.tenant_id, job.group_id, job.cursor, batch)
    if rows:
        current = await _store.mappings(conn, job.tenant_id)
        mapping = Mapping(job.kind, job.group_ref, job.role)
        with_it = View([*[m for m in current if m != mapping], mapping])
        without = View([m for m in current if m != mapping])
        users = await users_under(conn, ctx, [m for m, _ in rows])
        await _store.lock_users(conn, job.tenant_id, users)
        granted, bare = await roles_of(conn, ctx, users, with_it), await roles_of(conn, ctx, users, without)
        before, after = (bare, granted) if job.action == "map" else (granted, bare)
        await _emit(conn, ctx, before, after, job.group_id)
    cursor = rows[-1][0] if rows else job.cursor
    done = len(rows) < batch
    at = now()
    processed = job.processed + len(rows)
    await _store.advance_job(
        conn, job.tenant_id, job.id, cursor=cursor, processed=processed, done=done, at=at
    )
    return RoleJob(
        job.tenant_id, job.id, job.action, job.kind, job.group_ref, job.group_id, job.role,
        cursor, processed, job.total, "done" if done else "running", job.created, at,
    )  # fmt: skip


async def run_job_step(
    engine: AsyncEngine, tenant_id: str, job_id: str, batch: int = DEFAULT_BATCH
) -> RoleJob | None:
    """One committed batch of a job (None: no such job, or another worker holds it)."""
    async with write_transaction(engine) as conn:
        job = await _store.lock_job(conn, tenant_id, job_id)
        if job is None or job.state != "running":
            return job
        return await _step(conn, job, batch, None)


async def mappings(engine: AsyncEngine, tenant_id: str) -> list[Mapping]:
    async with read_transaction(engine) as conn:
        await _require_tenant(conn, tenant_id)
        return await _store.mappings(conn, tenant_id)


async def jobs(engine: AsyncEngine, tenant_id: str) -> list[RoleJob]:
    async with read_transaction(engine) as conn:
        await _require_tenant(conn, tenant_id)
        return await _store.jobs(conn, tenant_id)


async def user_roles(engine: AsyncEngine, tenant_id: str, user_id: str) -> Roles:
    async with read_transaction(engine) as conn:
        await _require_tenant(conn, tenant_id)
        if await _store.resource_type_of(conn, tenant_id, user_id) != "User":
            raise not_found(f"User {user_id} not found in tenant {tenant_id}")
        ctx = await _context(conn, tenant_id, None)
        found = await roles_of(conn, ctx, [user_id], View(await _store.mappings(conn, tenant_id)))
        return found[user_id]
