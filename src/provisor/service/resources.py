"""The resource services: create / get / list / replace / patch / delete for one resource type.

Each write is one database transaction that also appends its event (the outbox), so an answer
of 2xx to the IdP implies the change and its event are both stored. Subclasses add what is
particular to a resource type (derived attributes, membership rows) through a few hooks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from provisor.clock import now
from provisor.config import Settings
from provisor.errors import ScimError, invalid_value, not_found
from provisor.events.model import EventOp
from provisor.filter import bind, parse_filter
from provisor.filter.ast import Filter
from provisor.ids import new_resource_id
from provisor.patch import PatchOptions, apply_operations, parse_patch_request
from provisor.patch.write_only import split_write_only
from provisor.protocol.query import LIST_RESPONSE_URN, ListQuery, list_response
from provisor.schema.coerce import coerce_resource
from provisor.schema.model import AttrPath, ResourceType
from provisor.schema.registry import Registry
from provisor.schema.write_only import WriteOnly
from provisor.service.batch import PreparedCreate, create_many
from provisor.service.context import RequestContext
from provisor.service.cursor import Cursor
from provisor.service.cursor import signature as cursor_signature
from provisor.service.errors import scim_errors
from provisor.service.preconditions import check_if_match
from provisor.service.projection import Projection
from provisor.service.render import render
from provisor.service.tombstones import bury, restore, tombstoning
from provisor.storage import listing, outbox
from provisor.storage import resources as store
from provisor.storage.errors import NotFound
from provisor.storage.handles import AsyncConnection, AsyncEngine
from provisor.storage.indexing import index_rows
from provisor.storage.interfaces import Outbox, ResourceLists, ResourceReads, ResourceWrites
from provisor.storage.resources import ResourceWrite, StoredResource
from provisor.storage.transactions import autocommit, read_transaction, write_transaction

#: Receives the write-only values (e.g. `{"password": "..."}`) a committed write carried:
#: (tenant id, resource type, resource id, values). Set by the app when a hook wants them.
WriteOnlySink = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Change:
    """What a PUT or PATCH does to the resource as read: its new document, whether rows beside it
    changed (a group's members), whether that alone is an event of the resource (PUT), and,
    read without the lock, the member changes still to write (`members`: the PATCH engine's
    delta, for the type's `write_unlocked`)."""

    doc: dict[str, Any]
    extra_changed: bool
    event_if_extra: bool
    members: Any = None


class NeedsLock(Exception):
    """Raised while applying a change read without the lock when it cannot be applied that way
    (a PATCH filtering a group's members needs them read in the transaction): the read-apply-write
    starts again with the row locked."""


_Out = TypeVar("_Out")


class ResourceService:
    """Generic behaviour shared by every resource type."""

    def __init__(self, engine: AsyncEngine, registry: Registry, rt: ResourceType, settings: Settings):
        self.engine = engine
        self.registry = registry
        self.rt = rt
        self.settings = settings
        self.write_only = WriteOnly(registry, rt)
        self.write_only_sink: WriteOnlySink | None = None
        #: Storage's write side, as the contract names it (storage/interfaces/).
        self.writes: ResourceWrites = store
        self.reads: ResourceReads = store
        self.lists: ResourceLists = listing
        self.outbox: Outbox = outbox
        #: The projection of a request without `attributes` or `excludedAttributes` (nearly all),
        #: made once: it is never changed, and it keeps its `wants` answers.
        self.default_projection = Projection(registry, rt, None, None)

    # ---- hooks for subclasses -------------------------------------------------------------------

    def unique_attributes(self, ctx: RequestContext) -> frozenset[str]:
        return frozenset()

    def split_body(self, doc: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """Separate what is stored in the document from what is stored elsewhere (members)."""
        return doc, None

    async def store_extra(
        self, conn: AsyncConnection, ctx: RequestContext, stored: StoredResource, extra: Any, *, replace: bool
    ) -> bool:
        """Persist what `split_body` took out; return True if anything changed."""
        return False

    async def derived(
        self, conn: AsyncConnection, ctx: RequestContext, ids: list[str], projection: Projection
    ) -> dict[str, dict[str, Any]]:
        """Derived attributes per resource id (e.g. a user's `groups`), only when requested."""
        return {}

    async def before_delete(self, conn: AsyncConnection, ctx: RequestContext, resource_id: str) -> None:
        return None

    def event_op(self, before: dict[str, Any] | None, after: dict[str, Any]) -> EventOp:
        return EventOp.CREATED if before is None else EventOp.UPDATED

    def event_payload(
        self, ctx: RequestContext, stored: StoredResource, before: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The event's payload: the resource after the change (`before`: the stored document it
        replaced, None on create). Users add what was granted and revoked."""
        return render(self.rt, stored, ctx.base_url)

    def patch_options(self, ctx: RequestContext) -> PatchOptions:
        return PatchOptions(
            strict=bool(ctx.setting("strict_patch", False)),
            create_missing_on_value_path=not bool(ctx.setting("strict_patch", False)),
        )

    # ---- helpers --------------------------------------------------------------------------------

    def _index(self, ctx: RequestContext, doc: dict[str, Any]) -> list[tuple[str, str, bool]]:
        return list(index_rows(self.rt, doc, self.unique_attributes(ctx)))

    def index_for(self, ctx: RequestContext, doc: dict[str, Any]) -> list[tuple[str, str, bool]]:
        """The attribute_index rows of a document (the batch path computes them up front)."""
        return self._index(ctx, doc)

    async def create_many(self, ctx: RequestContext, items: Sequence[PreparedCreate]) -> list[StoredResource]:
        """Create many validated resources in one transaction (Bulk and import; see service/batch.py)."""
        with scim_errors():
            return await create_many(self, ctx, items)

    #: Whether a just-created resource can already have derived attributes (a new user belongs to
    #: no group, so Users skip that query on create).
    derived_on_create = True

    async def render_one(
        self,
        conn: AsyncConnection,
        ctx: RequestContext,
        stored: StoredResource,
        projection: Projection,
        *,
        fresh: bool = False,
    ) -> dict[str, Any]:
        derived: dict[str, dict[str, Any]] = {}
        if self.derived_on_create or not fresh:
            derived = await self.derived(conn, ctx, [stored.id], projection)
        return projection.apply(render(self.rt, stored, ctx.base_url, derived.get(stored.id)))

    def wants_derived(self, projection: Projection) -> bool:
        """Whether `derived` has anything to add under this projection (it then needs a query)."""
        return False

    async def fetch_for_read(
        self, ctx: RequestContext, resource_id: str, projection: Projection
    ) -> tuple[StoredResource, dict[str, Any] | None] | None:
        """The resource and its derived attributes; subclasses may do both in one statement."""
        stored = await self.reads.read_resource(self.engine, ctx.tenant_id, self.rt.name, resource_id)
        if stored is None:
            return None
        derived = await self.read_derived(ctx, [stored.id], projection)
        return stored, derived.get(stored.id)

    async def read_derived(
        self, ctx: RequestContext, ids: list[str], projection: Projection
    ) -> dict[str, dict[str, Any]]:
        """`derived` outside any transaction, for reads; subclasses may use prebuilt statements."""
        if not ids or not self.wants_derived(projection):
            return {}
        async with autocommit(self.engine) as conn:
            return await self.derived(conn, ctx, ids, projection)

    async def record_event(
        self,
        conn: AsyncConnection,
        ctx: RequestContext,
        stored: StoredResource,
        op: EventOp,
        at: str,
        payload: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
    ) -> None:
        if payload is None:
            payload = self.event_payload(ctx, stored, before)
        await self.outbox.append_event(
            conn,
            tenant_id=ctx.tenant_id,
            at=at,
            resource_type=self.rt.name,
            resource_id=stored.id,
            op=op,
            version=stored.version,
            actor=ctx.actor,
            payload=payload,
        )

    async def _current(self, conn: AsyncConnection, ctx: RequestContext, resource_id: str) -> StoredResource:
        current = await self.writes.fetch_resource(
            conn, ctx.tenant_id, self.rt.name, resource_id, for_update=True
        )
        if current is None:
            raise NotFound(self.rt.name, resource_id)
        return current

    async def deliver_write_only(self, ctx: RequestContext, resource_id: str, values: dict[str, Any]) -> None:
        """Hand the write-only values of a committed write to the sink (never stored, never logged)."""
        if values and self.write_only_sink is not None:
            await self.write_only_sink(ctx.tenant_id, self.rt.name, resource_id, values)

    async def _committed(
        self, ctx: RequestContext, secrets: dict[str, Any], write: Awaitable[tuple[StoredResource, _Out]]
    ) -> tuple[StoredResource, _Out]:
        """Every write operation's end: storage's errors as SCIM errors (service/errors.py), and
        the write-only values the request carried handed over once the write committed."""
        with scim_errors():
            stored, out = await write
        await self.deliver_write_only(ctx, stored.id, secrets)
        return stored, out

    # ---- operations -----------------------------------------------------------------------------

    async def create(
        self, ctx: RequestContext, body: dict[str, Any], projection: Projection
    ) -> tuple[StoredResource, dict[str, Any]]:
        return await self._committed(ctx, self.write_only.in_body(body), self._create(ctx, body, projection))

    async def _create(
        self, ctx: RequestContext, body: dict[str, Any], projection: Projection
    ) -> tuple[StoredResource, dict[str, Any]]:
        restored = await restore(self, ctx, body, projection) if tombstoning(ctx) else None
        if restored is not None:
            return restored
        doc, extra = self.split_body(
            coerce_resource(self.registry, self.rt, body, dropped=ctx.unknown_attributes)
        )
        at = now()
        if extra is None:
            # Nothing to write beyond the resource: no transaction round trips (store.create_at_once).
            stored = StoredResource(new_resource_id(), self.rt.name, 1, at, at, doc)
            await self.writes.create_at_once(
                self.engine,
                tenant_id=ctx.tenant_id,
                stored=stored,
                index=self._index(ctx, doc),
                actor=ctx.actor,
                event_payload=self.event_payload(ctx, stored, None),
            )
            derived = await self.read_derived(ctx, [stored.id], projection) if self.derived_on_create else {}
            return stored, projection.apply(render(self.rt, stored, ctx.base_url, derived.get(stored.id)))
        async with write_transaction(self.engine) as conn:
            stored = await self.writes.insert_resource(
                conn,
                tenant_id=ctx.tenant_id,
                resource_type=self.rt.name,
                resource_id=new_resource_id(),
                at=at,
                doc=doc,
                index=self._index(ctx, doc),
            )
            await self.record_event(conn, ctx, stored, EventOp.CREATED, at)
            await self.store_extra(conn, ctx, stored, extra, replace=True)
            body_out = await self.render_one(conn, ctx, stored, projection, fresh=True)
        return stored, body_out

    async def get(
        self, ctx: RequestContext, resource_id: str, projection: Projection
    ) -> tuple[StoredResource, dict[str, Any]]:
        found = await self.fetch_for_read(ctx, resource_id, projection)
        if found is None:
            raise not_found(f"{self.rt.name} {resource_id} not found")
        stored, derived = found
        return stored, projection.apply(render(self.rt, stored, ctx.base_url, derived))

    async def replace(
        self,
        ctx: RequestContext,
        resource_id: str,
        body: dict[str, Any],
        projection: Projection,
        if_match: str | None,
    ) -> tuple[StoredResource, dict[str, Any]]:
        async def replaced(write: ResourceWrite) -> Change:
            current = write.current
            doc, extra = self.split_body(
                coerce_resource(
                    self.registry, self.rt, body, existing=current.doc, dropped=ctx.unknown_attributes
                )
            )
            if write.conn is None:
                if extra is not None:
                    raise NeedsLock  # rows beside the resource are replaced in the transaction
                return Change(doc, False, event_if_extra=True)
            extra_changed = await self.store_extra(write.conn, ctx, current, extra, replace=True)
            return Change(doc, extra_changed, event_if_extra=True)

        unlocked = self.unlocked_first(ctx, projection, if_match, patch=False)
        write = self._read_apply_write(ctx, resource_id, projection, if_match, replaced, unlocked=unlocked)
        stored, out = await self._committed(ctx, self.write_only.in_body(body), write)
        assert out is not None
        return stored, out

    async def patch(
        self,
        ctx: RequestContext,
        resource_id: str,
        body: Any,
        projection: Projection | None,
        if_match: str | None,
    ) -> tuple[StoredResource, dict[str, Any] | None]:
        """PATCH; operations on write-only attributes (a password) are taken out first: they
        change nothing stored, so a password-only PATCH writes no version and no event."""
        request = parse_patch_request(body, max_operations=self.settings.max_patch_operations)
        operations, secrets = split_write_only(request.operations, self.write_only)

        async def patched(write: ResourceWrite) -> Change:
            current = write.current
            result = await self.run_patch(write.conn, ctx, current, operations)
            if not result.changed:
                return Change(current.doc, False, event_if_extra=False)
            if write.conn is None:  # the member changes are the unlocked write's (`write_unlocked`)
                return Change(dict(result.doc), False, event_if_extra=False, members=result.members)
            members_changed = await self.apply_member_delta(write.conn, ctx, current, result.members)
            return Change(dict(result.doc), members_changed, event_if_extra=False)

        unlocked = self.unlocked_first(ctx, projection, if_match, patch=True)
        write = self._read_apply_write(ctx, resource_id, projection, if_match, patched, unlocked=unlocked)
        return await self._committed(ctx, secrets, write)

    #: Whether PUT and PATCH touch only the resource's own row, index rows and event (Users; a
    #: Group's members are rows of their own): they then read without a lock and write in one
    #: statement (`_read_apply_write`).
    single_row_writes = False

    def unlocked_first(
        self, ctx: RequestContext, projection: Projection | None, if_match: str | None, *, patch: bool
    ) -> bool:
        """Whether a PUT or PATCH is first tried without the row lock (`_read_apply_write`)."""
        return self.single_row_writes

    def groups_in_read(self, ctx: RequestContext, projection: Projection | None) -> bool:
        """Whether a write's answer needs the resource's direct groups, read with the resource."""
        return False

    def derived_from_groups(self, ctx: RequestContext, groups: list[tuple[str, str]]) -> dict[str, Any]:
        """The derived attributes from the direct groups `groups_in_read` asked for."""
        return {}

    async def updated(
        self, conn: AsyncConnection, ctx: RequestContext, before: StoredResource, after: StoredResource
    ) -> None:
        """After a PUT or PATCH changed the document, in its transaction (types that write beyond
        their own row: a group's rename moves the roles mapped by its displayName)."""
        return

    async def _read_apply_write(
        self,
        ctx: RequestContext,
        resource_id: str,
        projection: Projection | None,
        if_match: str | None,
        apply: Callable[[ResourceWrite], Awaitable[Change]],
        *,
        unlocked: bool,
    ) -> tuple[StoredResource, dict[str, Any] | None]:
        """The one implementation of PUT and PATCH, for every type, whatever the database: read
        the resource, check If-Match against the version read, apply the change, write the next
        version if the stored one is still the one read (storage/resources.py `resource_write`
        holds the per-database statements).

        `unlocked`: read without a lock and write with the type's `write_unlocked` (one
        statement: a user's `ResourceWrite.update`, a group's member change at once). If another
        write got in between, or the change cannot be written that way (`NeedsLock`, or
        `write_unlocked` answering None), the attempt runs again with the row locked: writers of
        a busy resource then queue on the lock, and every one of them lands. Otherwise the lock
        is taken from the start."""
        locked = not unlocked
        with_groups = self.groups_in_read(ctx, projection)
        while True:
            async with self.writes.resource_write(
                self.engine, ctx.tenant_id, self.rt.name, resource_id, locked=locked, with_groups=with_groups
            ) as write:
                check_if_match(if_match, write.current.version)
                try:
                    change = await apply(write)
                    if write.conn is None:
                        stored = await self.write_unlocked(ctx, write, change)
                    else:
                        stored = await self._write(ctx, write, change)
                except NeedsLock:
                    assert write.conn is None, "a locked write is never retried"
                    stored = None
                if stored is None:  # another write got in first, or this needs the lock: again, locked
                    locked = True
                    continue
                return stored, await self._answer(ctx, write, stored, projection)

    async def write_unlocked(
        self, ctx: RequestContext, write: ResourceWrite, change: Change
    ) -> StoredResource | None:
        """The write of a change read without the lock: the stored result, or None when another
        write got in first (or the change needs the lock). By default `ResourceWrite.update`, one
        statement conditional on the version read."""
        if change.members is not None:
            raise NeedsLock
        return await self._write(ctx, write, change)

    async def _write(
        self, ctx: RequestContext, write: ResourceWrite, change: Change
    ) -> StoredResource | None:
        """The next version, its index rows and its event, when anything changed (None: the
        version read is no longer stored, only without the lock)."""
        current = write.current
        changed = _changed_attributes(current.doc, change.doc)
        doc_changed = bool(changed)
        if not (doc_changed or change.extra_changed):
            return current
        stored = StoredResource(
            current.id, current.resource_type, current.version + 1, current.created, now(), change.doc
        )
        op = self.event_op(current.doc, change.doc) if doc_changed or change.event_if_extra else None
        # Only the rows that differ are written, and rows of an attribute whose value did not
        # change are the same on both sides: only the changed attributes are indexed.
        written = await write.update(
            stored,
            index=self._index(ctx, _only(change.doc, changed)) if doc_changed else None,
            previous_index=self._index(ctx, _only(current.doc, changed)) if doc_changed else None,
            op=op,
            actor=ctx.actor,
            payload=None if op is None else self.event_payload(ctx, stored, current.doc),
        )
        if not written:
            return None
        if doc_changed and write.conn is not None:
            await self.updated(write.conn, ctx, current, stored)
        return stored

    async def _answer(
        self, ctx: RequestContext, write: ResourceWrite, stored: StoredResource, projection: Projection | None
    ) -> dict[str, Any] | None:
        """A write's response body (None: 204)."""
        if projection is None:
            return None
        if write.groups is not None:
            derived: dict[str, Any] | None = self.derived_from_groups(ctx, write.groups)
        elif write.conn is not None:
            return await self.render_one(write.conn, ctx, stored, projection)
        else:
            derived = (await self.read_derived(ctx, [stored.id], projection)).get(stored.id)
        return projection.apply(render(self.rt, stored, ctx.base_url, derived))

    async def run_patch(
        self, conn: AsyncConnection | None, ctx: RequestContext, current: StoredResource, operations: Any
    ) -> Any:
        return self.patched(ctx, current, operations)

    def patched(
        self,
        ctx: RequestContext,
        current: StoredResource,
        operations: Any,
        load_members: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> Any:
        """The PATCH pipeline (patch/pipeline.py) on `current` (`load_members`: the group's member
        list, read only when a member filter needs it)."""
        return apply_operations(
            self.registry,
            self.rt,
            current.doc,
            operations,
            resource_id=current.id,
            options=self.patch_options(ctx),
            load_members=load_members,
            dropped=ctx.unknown_attributes,
        )

    async def apply_member_delta(
        self, conn: AsyncConnection, ctx: RequestContext, current: StoredResource, delta: Any
    ) -> bool:
        return False

    async def delete(self, ctx: RequestContext, resource_id: str, if_match: str | None) -> None:
        with scim_errors():
            await self._delete(ctx, resource_id, if_match)

    async def _delete(self, ctx: RequestContext, resource_id: str, if_match: str | None) -> None:
        at = now()
        async with write_transaction(self.engine) as conn:
            current = await self._current(conn, ctx, resource_id)
            check_if_match(if_match, current.version)
            # Under the tombstone policy the resource is kept aside first (with the groups it is in).
            payload = await bury(self, conn, ctx, current, at) if tombstoning(ctx) else None
            await self.before_delete(conn, ctx, resource_id)
            await self.writes.delete_resource(conn, ctx.tenant_id, self.rt.name, resource_id)
            await self.outbox.append_event(
                conn,
                tenant_id=ctx.tenant_id,
                at=at,
                resource_type=self.rt.name,
                resource_id=resource_id,
                op=EventOp.DELETED,
                version=current.version,
                actor=ctx.actor,
                payload=payload,
            )

    # ---- queries --------------------------------------------------------------------------------

    def bound_filter(self, text: str | None, *, across_types: bool = False) -> Filter | None:
        if text is None:
            return None
        node = parse_filter(
            text, max_length=self.settings.max_filter_length, max_depth=self.settings.max_filter_depth
        )
        return bind(node, self.registry, self.rt, unknown_absent=across_types)

    def sort_path(self, query: ListQuery) -> AttrPath | None:
        """The attribute of `sortBy` (None: creation time, stable between pages)."""
        if not query.sort_by:
            return None
        try:
            path = self.registry.resolve(self.rt, query.sort_by)
        except ScimError:
            path = None
        if path is None:
            raise invalid_value(f"cannot sort by unknown attribute {query.sort_by!r}")
        return path

    async def list_by_cursor(self, ctx: RequestContext, query: ListQuery) -> dict[str, Any]:
        """RFC 9865: `cursor=` (empty) starts, `nextCursor` / `previousCursor` move."""
        assert query.cursor is not None
        projection = Projection(self.registry, self.rt, query.attributes, query.excluded_attributes)
        node = self.bound_filter(query.filter, across_types=query.across_types)
        sort = self.sort_path(query)
        sig = cursor_signature(ctx.tenant_id, self.rt.name, query.filter, query.sort_by, query.descending)
        position = Cursor.decode(query.cursor, sig) if query.cursor else None
        forward = position is None or position.forward
        async with read_transaction(self.engine) as conn:
            listed = await self.lists.plan_listing(
                conn, tenant_id=ctx.tenant_id, rt=self.rt, node=node, sort=sort, descending=query.descending
            )
            total = await listed.count()
            keyed: list[tuple[StoredResource, Any]] = []
            if query.count > 0:
                keyed = await listed.keyed_page(position, limit=query.count + 1)
            more = len(keyed) > query.count
            keyed = keyed[: query.count]
            if not forward:
                keyed.reverse()
            rows = [r for r, _ in keyed]
            derived = await self.derived(conn, ctx, [r.id for r in rows], projection) if rows else {}
        out = [projection.apply(render(self.rt, r, ctx.base_url, derived.get(r.id))) for r in rows]
        body: dict[str, Any] = {
            "schemas": [LIST_RESPONSE_URN],
            "totalResults": total,
            "itemsPerPage": len(out),
            "Resources": out,
        }
        if keyed and (more if forward else True):
            body["nextCursor"] = Cursor(True, keyed[-1][1], keyed[-1][0].id, sig).encode()
        if keyed and (position is not None if forward else more):
            body["previousCursor"] = Cursor(False, keyed[0][1], keyed[0][0].id, sig).encode()
        return body

    async def list(self, ctx: RequestContext, query: ListQuery) -> dict[str, Any]:
        if query.cursor is not None:
            return await self.list_by_cursor(ctx, query)
        projection = Projection(self.registry, self.rt, query.attributes, query.excluded_attributes)
        node = self.bound_filter(query.filter, across_types=query.across_types)
        lookup = self.lists.indexed_equality(node, self.rt) if node is not None else None
        rows: list[StoredResource] = []
        offset, limit = query.start_index - 1, query.count
        if lookup is not None and query.sort_by is None and not query.descending and not query.across_types:
            # The IdPs' existence check (`userName eq "..."`): prebuilt statements, no SQL building.
            attr, value = lookup
            derived: dict[str, dict[str, Any]] | None = None
            if limit > 0:
                page, derived = await self.list_indexed(ctx, attr, value, offset, limit, projection)
                rows = list(page)
            total = _proven_total(query, rows)
            if total is None:
                total = await self.reads.count_by_indexed_value(
                    self.engine, ctx.tenant_id, self.rt.name, attr, value
                )
        else:
            derived = None
            sort = self.sort_path(query)
            async with autocommit(self.engine) as conn:
                listed = await self.lists.plan_listing(
                    conn,
                    tenant_id=ctx.tenant_id,
                    rt=self.rt,
                    node=node,
                    sort=sort,
                    descending=query.descending,
                )
                if limit > 0:
                    rows = await listed.page(offset=offset, limit=limit)
                total = _proven_total(query, rows)
                if total is None:
                    total = await listed.count()
        if derived is None:
            derived = await self.read_derived(ctx, [r.id for r in rows], projection)
        out = [projection.apply(render(self.rt, r, ctx.base_url, derived.get(r.id))) for r in rows]
        return list_response(out, total, query.start_index)

    async def list_indexed(
        self, ctx: RequestContext, attr: str, value: str, offset: int, limit: int, projection: Projection
    ) -> tuple[Sequence[StoredResource], dict[str, dict[str, Any]] | None]:
        """A page of `attr eq value` (indexed); derived attributes when read in the same statement."""
        rows = await self.reads.list_by_indexed_value(
            self.engine, ctx.tenant_id, self.rt.name, attr, value, offset=offset, limit=limit
        )
        return rows, None


def _proven_total(query: ListQuery, rows: list[StoredResource]) -> int | None:
    """The total when this page proves it (a short page, or an empty first page): no COUNT(*)."""
    if 0 < len(rows) < query.count or (not rows and query.count > 0 and query.start_index == 1):
        return query.start_index - 1 + len(rows)
    return None


def _changed_attributes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The top-level attributes whose values differ between two documents (empty: the documents
    are equal, as `before == after` would say)."""
    changed = [key for key, value in after.items() if before.get(key, _MISSING) != value]
    changed.extend(key for key in before if key not in after)
    return changed


def _only(doc: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    return {key: doc[key] for key in keys if key in doc}


#: Stands for an attribute a document does not have (None is a value a document may hold).
_MISSING: Any = object()
