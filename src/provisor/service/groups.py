"""Groups: membership lives in `group_members` rows, never inside the group document.

Adding or removing k members touches k rows, whatever the group's size; reads that exclude
`members` never touch the membership table at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from provisor.clock import now
from provisor.errors import invalid_value, not_found
from provisor.events.model import EventOp
from provisor.service import roles
from provisor.service.context import RequestContext
from provisor.service.projection import Projection
from provisor.service.render import render
from provisor.service.resources import Change, NeedsLock, ResourceService
from provisor.storage import members as member_store
from provisor.storage import outbox
from provisor.storage import resources as store
from provisor.storage.handles import AsyncConnection
from provisor.storage.interfaces import Members, Outbox, ResourceWrites
from provisor.storage.resources import ResourceWrite, StoredResource
from provisor.storage.transactions import read_transaction

#: What `remove_from_all_groups` (no service of its own) writes through.
_members: Members = member_store
_writes: ResourceWrites = store
_outbox: Outbox = outbox

Wanted = dict[str, str | None]  # member id -> display as sent (None: derive it), in request order


def _wanted(values: Any) -> Wanted:
    """Member ids from a list of member objects, first-seen order, duplicates collapsed."""
    wanted: Wanted = {}
    for item in values or ():
        if isinstance(item, dict) and isinstance(item.get("value"), str) and item["value"]:
            display = item.get("display")
            wanted.setdefault(item["value"], display if isinstance(display, str) and display else None)
    return wanted


def _check_resolved(ctx: RequestContext, group_id: str, ids: list[str], types: dict[str, str]) -> None:
    """Unknown member ids are an error unless the tenant ignores them; a group never contains itself."""
    missing = [i for i in ids if i not in types]
    if missing and not ctx.setting("ignore_unknown_members", False):
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise invalid_value(f"members do not exist: {shown}")
    if group_id in types:
        raise invalid_value("a group cannot be a member of itself")


def _needs_lock() -> list[dict[str, Any]]:
    """The member loader of a PATCH read without the lock: the member list is read under it."""
    raise NeedsLock


class GroupService(ResourceService):
    #: The member rows, as the contract names them (storage/interfaces/).
    members: Members = member_store

    def unique_attributes(self, ctx: RequestContext) -> frozenset[str]:
        if ctx.setting("allow_duplicate_group_names", False):
            return frozenset()
        return frozenset({"displayName"})

    def split_body(self, doc: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        doc = dict(doc)
        return doc, doc.pop("members", None)

    async def _resolve(
        self, conn: AsyncConnection, ctx: RequestContext, group_id: str, ids: list[str]
    ) -> list[tuple[str, str]]:
        """(id, type) of the members that exist; unknown ids are an error unless configured away."""
        types = await self.members.resource_types_of(conn, ctx.tenant_id, ids)
        _check_resolved(ctx, group_id, ids, types)
        return [(i, types[i]) for i in ids if i in types]

    async def _add(
        self, conn: AsyncConnection, ctx: RequestContext, group_id: str, wanted: Wanted
    ) -> list[str]:
        if not wanted:
            return []
        resolved = await self._resolve(conn, ctx, group_id, list(wanted))
        rows = [(i, t, wanted[i]) for i, t in resolved]
        inserted = await self.members.add_new_members(conn, ctx.tenant_id, group_id, rows)
        return [i for i, _ in resolved if i in inserted]

    async def _member_events(
        self, conn: AsyncConnection, ctx: RequestContext, group_id: str, added: list[str], removed: list[str]
    ) -> None:
        at = now()
        for op, ids in ((EventOp.MEMBER_ADDED, added), (EventOp.MEMBER_REMOVED, removed)):
            if ids:
                await self.outbox.append_event(
                    conn,
                    tenant_id=ctx.tenant_id,
                    at=at,
                    resource_type="Group",
                    resource_id=group_id,
                    op=op,
                    version=None,
                    actor=ctx.actor,
                    payload={"members": ids},
                )
        await roles.membership_changed(conn, ctx, group_id, added, removed)

    async def updated(
        self, conn: AsyncConnection, ctx: RequestContext, before: StoredResource, after: StoredResource
    ) -> None:
        """A rename moves the roles mapped by displayName."""
        await roles.group_renamed(
            conn, ctx, after.id, before.doc.get("displayName"), after.doc.get("displayName")
        )

    async def _replace_members(
        self, conn: AsyncConnection, ctx: RequestContext, group_id: str, wanted: Wanted
    ) -> tuple[list[str], list[str]]:
        current = await self.members.member_ids(conn, ctx.tenant_id, group_id)
        removed = [i for i in current if i not in wanted]
        await self.members.remove_members(conn, ctx.tenant_id, group_id, removed)
        added = await self._add(conn, ctx, group_id, {i: d for i, d in wanted.items() if i not in current})
        return added, removed

    async def store_extra(
        self, conn: AsyncConnection, ctx: RequestContext, stored: StoredResource, extra: Any, *, replace: bool
    ) -> bool:
        added, removed = await self._replace_members(conn, ctx, stored.id, _wanted(extra))
        await self._member_events(conn, ctx, stored.id, added, removed)
        return bool(added or removed)

    def unlocked_first(
        self, ctx: RequestContext, projection: Projection | None, if_match: str | None, *, patch: bool
    ) -> bool:
        """A PATCH answered with 204 and without If-Match (an IdP's group push) is first tried
        without the lock: if it only adds and removes members, `write_unlocked` makes it one
        statement (one call on SQLite) instead of a transaction of about eight round trips."""
        return patch and projection is None and if_match is None

    async def write_unlocked(
        self, ctx: RequestContext, write: ResourceWrite, change: Change
    ) -> StoredResource | None:
        """A member-only change as `Members.change_members_at_once`; anything else (the document
        changed, all members replaced or removed, roles mapped in the tenant, which change with
        membership in the transaction: the change at once then writes nothing) is None: the
        locked path. The member change needs no version check: it adds and removes the ids the
        request named, whatever the version stored."""
        current, delta = write.current, change.members
        if delta is None and change.doc == current.doc:
            return current  # nothing changed
        if change.doc != current.doc or delta is None or delta.remove_all or delta.replace_all is not None:
            return None
        add = _wanted(delta.add)
        at = now()
        done = await self.members.change_members_at_once(
            self.engine,
            tenant_id=ctx.tenant_id,
            group_id=current.id,
            add=add,
            remove_ids=sorted(delta.remove_ids),
            ignore_unknown=bool(ctx.setting("ignore_unknown_members", False)),
            at=at,
            actor=ctx.actor,
        )
        if not done.applied:
            _check_resolved(ctx, current.id, list(add), done.known)  # raises the reason
            return None  # roles are mapped, or the group went away meanwhile (the locked path: 404)
        if done.version is None:
            return current
        return StoredResource(
            current.id, current.resource_type, done.version, current.created, at, current.doc
        )

    async def run_patch(
        self, conn: AsyncConnection | None, ctx: RequestContext, current: StoredResource, operations: Any
    ) -> Any:
        """The PATCH pipeline with the member loader: in the transaction when locked; read
        without the lock, a PATCH that needs the member list (a filter on `members`) needs the lock."""
        if conn is None:
            return self.patched(ctx, current, operations, _needs_lock)
        return await self.members.run_with_member_loader(
            conn, ctx.tenant_id, current.id, lambda load: self.patched(ctx, current, operations, load)
        )

    async def apply_member_delta(
        self, conn: AsyncConnection, ctx: RequestContext, current: StoredResource, delta: Any
    ) -> bool:
        if delta is None:
            return False
        added: list[str] = []
        removed: list[str] = []
        if delta.remove_all:
            removed += await self.members.remove_all_members(conn, ctx.tenant_id, current.id)
        if delta.replace_all is not None:
            a, r = await self._replace_members(conn, ctx, current.id, _wanted(delta.replace_all))
            added += a
            removed += r
        if delta.remove_ids:
            ids = sorted(delta.remove_ids)
            present = await self.members.existing_member_ids(conn, ctx.tenant_id, current.id, ids)
            await self.members.remove_members(conn, ctx.tenant_id, current.id, sorted(present))
            removed += sorted(present)
        if delta.add:
            added += await self._add(conn, ctx, current.id, _wanted(delta.add))
        await self._member_events(conn, ctx, current.id, added, removed)
        return bool(added or removed)

    async def before_delete(self, conn: AsyncConnection, ctx: RequestContext, resource_id: str) -> None:
        await roles.group_deleting(conn, ctx, resource_id)
        await remove_from_all_groups(conn, ctx, resource_id)

    async def get_streaming(
        self, ctx: RequestContext, resource_id: str, projection: Projection
    ) -> tuple[StoredResource, MemberStream | dict[str, Any]]:
        """Like `get`, but when `members` are requested they are streamed, not materialised."""
        if not projection.wants("members"):
            return await self.get(ctx, resource_id, projection)
        stored = await self.reads.read_resource(self.engine, ctx.tenant_id, self.rt.name, resource_id)
        if stored is None:
            raise not_found(f"Group {resource_id} not found")
        sample = projection.apply(render(self.rt, stored, ctx.base_url, {"members": [SAMPLE_MEMBER]}))
        kept_members = sample.pop("members", [{}])
        keep = frozenset(kept_members[0]) if kept_members else frozenset()
        return stored, MemberStream(self, ctx, sample, keep)

    def wants_derived(self, projection: Projection) -> bool:
        return projection.wants("members")

    async def derived(
        self, conn: AsyncConnection, ctx: RequestContext, ids: list[str], projection: Projection
    ) -> dict[str, dict[str, Any]]:
        if not ids or not projection.wants("members"):
            return {}
        out: dict[str, dict[str, Any]] = {}
        base = ctx.base_url
        for group_id, member_id, member_type, display in await self.members.list_members(
            conn, ctx.tenant_id, ids
        ):
            ref = f"{base}/{'Users' if member_type == 'User' else 'Groups'}/{member_id}"
            element = {"value": member_id, "$ref": ref, "type": member_type}
            if display:
                element["display"] = display
            out.setdefault(group_id, {"members": []})["members"].append(element)
        return out


SAMPLE_MEMBER = {"value": "", "$ref": "", "type": "User", "display": ""}


class MemberStream:
    """A group's JSON body whose `members` are streamed from the database in batches.

    A 1,000,000-member group is never held in memory as Python objects: only one batch of rows and
    its encoded bytes at a time (DESIGN: large reads stream).
    """

    def __init__(
        self, service: GroupService, ctx: RequestContext, head: dict[str, Any], keep: frozenset[str]
    ):
        self.service = service
        self.ctx = ctx
        self.head = head
        self.keep = keep

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = orjson.dumps(self.head)
        yield head[:-1] + b',"members":['
        base = self.ctx.base_url
        first = True
        buffer: list[bytes] = []
        async with read_transaction(self.service.engine) as conn:
            rows = self.service.members.iter_members(conn, self.ctx.tenant_id, [self.head["id"]])
            async for _, member_id, member_type, display in rows:
                ref = f"{base}/{'Users' if member_type == 'User' else 'Groups'}/{member_id}"
                element = {"value": member_id, "$ref": ref, "type": member_type, "display": display}
                if not display:
                    del element["display"]
                if len(self.keep) < len(SAMPLE_MEMBER):
                    element = {k: v for k, v in element.items() if k in self.keep}
                buffer.append(orjson.dumps(element) if first else b"," + orjson.dumps(element))
                first = False
                if len(buffer) >= 2000:
                    yield b"".join(buffer)
                    buffer.clear()
        buffer.append(b"]}")
        yield b"".join(buffer)


async def remove_from_all_groups(conn: AsyncConnection, ctx: RequestContext, member_id: str) -> None:
    """Before a member is deleted: bump each containing group and record member_removed."""
    at = now()
    for group_id in await _members.groups_containing(conn, ctx.tenant_id, member_id):
        group = await _writes.fetch_resource(conn, ctx.tenant_id, "Group", group_id, for_update=True)
        if group is None:
            continue
        await _writes.touch_resource(conn, tenant_id=ctx.tenant_id, current=group, at=at)
        await _outbox.append_event(
            conn,
            tenant_id=ctx.tenant_id,
            at=at,
            resource_type="Group",
            resource_id=group_id,
            op=EventOp.MEMBER_REMOVED,
            version=group.version + 1,
            actor=ctx.actor,
            payload={"members": [member_id]},
        )
