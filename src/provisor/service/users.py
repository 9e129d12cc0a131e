"""Users: unique userName, activation events, and the derived `groups` attribute."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from provisor.errors import ScimError
from provisor.events.model import EventOp
from provisor.service import roles
from provisor.service.adoption import adopt_user
from provisor.service.assignments import CHANGES_KEY, assignment_changes
from provisor.service.context import RequestContext
from provisor.service.groups import remove_from_all_groups
from provisor.service.projection import Projection
from provisor.service.render import render
from provisor.service.resources import ResourceService
from provisor.storage import members as member_store
from provisor.storage.handles import AsyncConnection
from provisor.storage.interfaces import MemberGroups
from provisor.storage.resources import StoredResource


class UserService(ResourceService):
    #: The groups users are in, as the contract names them (storage/interfaces/).
    groups_of: MemberGroups = member_store

    def unique_attributes(self, ctx: RequestContext) -> frozenset[str]:
        return frozenset({"userName"})

    async def create(
        self, ctx: RequestContext, body: dict[str, Any], projection: Projection
    ) -> tuple[StoredResource, dict[str, Any]]:
        """POST; a userName clash with an unmanaged (imported) account adopts it instead of 409."""
        try:
            return await super().create(ctx, body, projection)
        except ScimError as error:
            if error.scim_type != "uniqueness":
                raise
            adopted = await adopt_user(self, ctx, body, projection)
            if adopted is None:
                raise
            await self.deliver_write_only(ctx, adopted[0].id, self.write_only.in_body(body))
            return adopted

    def event_op(self, before: dict[str, Any] | None, after: dict[str, Any]) -> EventOp:
        if before is None:
            return EventOp.CREATED
        was_active = before.get("active", True)
        is_active = after.get("active", True)
        if was_active and not is_active:
            return EventOp.DEACTIVATED
        if is_active and not was_active:
            return EventOp.ACTIVATED
        return EventOp.UPDATED

    def event_payload(
        self, ctx: RequestContext, stored: StoredResource, before: dict[str, Any] | None
    ) -> dict[str, Any]:
        payload = render(self.rt, stored, ctx.base_url)
        if before is not None:
            changes = assignment_changes(before, stored.doc)
            if changes is not None:
                payload[CHANGES_KEY] = changes
        return payload

    derived_on_create = False
    single_row_writes = True

    def wants_derived(self, projection: Projection) -> bool:
        return projection.wants("groups")

    async def fetch_for_read(
        self, ctx: RequestContext, resource_id: str, projection: Projection
    ) -> tuple[StoredResource, dict[str, Any] | None] | None:
        if not projection.wants("groups") or ctx.setting("indirect_groups", False):
            return await super().fetch_for_read(ctx, resource_id, projection)
        found = await self.reads.read_with_groups(self.engine, ctx.tenant_id, self.rt.name, resource_id)
        if found is None:
            return None
        stored, groups = found
        return stored, self._groups_attribute(ctx, groups) or None

    def groups_in_read(self, ctx: RequestContext, projection: Projection | None) -> bool:
        """A PUT or PATCH answered with the user reads its direct groups in the statement that
        reads it (they do not change with the user's own document)."""
        return (
            projection is not None
            and projection.wants("groups")
            and not ctx.setting("indirect_groups", False)
        )

    def derived_from_groups(self, ctx: RequestContext, groups: list[tuple[str, str]]) -> dict[str, Any]:
        return self._groups_attribute(ctx, groups)

    def _groups_attribute(self, ctx: RequestContext, groups: list[tuple[str, str]]) -> dict[str, Any]:
        if not groups:
            return {}
        return {"groups": [self._group_entry(ctx, gid, display, "direct") for gid, display in groups]}

    @staticmethod
    def _group_entry(ctx: RequestContext, group_id: str, display: str, kind: str) -> dict[str, Any]:
        return {
            "value": group_id,
            "$ref": f"{ctx.base_url}/Groups/{group_id}",
            "display": display,
            "type": kind,
        }

    async def read_derived(
        self, ctx: RequestContext, ids: list[str], projection: Projection
    ) -> dict[str, dict[str, Any]]:
        if not ids or not projection.wants("groups") or ctx.setting("indirect_groups", False):
            return await super().read_derived(ctx, ids, projection)
        return self._direct_entries(
            ctx, await self.groups_of.read_direct_groups(self.engine, ctx.tenant_id, ids)
        )

    async def list_indexed(
        self, ctx: RequestContext, attr: str, value: str, offset: int, limit: int, projection: Projection
    ) -> tuple[Sequence[StoredResource], dict[str, dict[str, Any]] | None]:
        if not projection.wants("groups") or ctx.setting("indirect_groups", False):
            return await super().list_indexed(ctx, attr, value, offset, limit, projection)
        found = await self.reads.list_by_indexed_value_with_groups(
            self.engine, ctx.tenant_id, self.rt.name, attr, value, offset=offset, limit=limit
        )
        derived = {stored.id: self._groups_attribute(ctx, groups) for stored, groups in found if groups}
        return [stored for stored, _ in found], derived

    def _direct_entries(
        self, ctx: RequestContext, direct: list[tuple[str, str, str]]
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for member_id, group_id, display in direct:
            entry = self._group_entry(ctx, group_id, display, "direct")
            out.setdefault(member_id, {"groups": []})["groups"].append(entry)
        return out

    async def derived(
        self, conn: AsyncConnection, ctx: RequestContext, ids: list[str], projection: Projection
    ) -> dict[str, dict[str, Any]]:
        if not ids or not projection.wants("groups"):
            return {}
        out = self._direct_entries(ctx, await self.groups_of.direct_groups(conn, ctx.tenant_id, ids))
        if ctx.setting("indirect_groups", False):
            await self._add_indirect(conn, ctx, out)
        return out

    async def _add_indirect(
        self, conn: AsyncConnection, ctx: RequestContext, out: dict[str, dict[str, Any]]
    ) -> None:
        """Walk parent groups breadth-first; the visited set makes cycles terminate."""
        for derived in out.values():
            groups: list[dict[str, Any]] = derived["groups"]
            seen = {g["value"] for g in groups}
            frontier = list(seen)
            indirect: list[str] = []
            while frontier:
                parents = await self.groups_of.parent_groups(conn, ctx.tenant_id, frontier)
                frontier = []
                for parent_ids in parents.values():
                    for parent in parent_ids:
                        if parent not in seen:
                            seen.add(parent)
                            indirect.append(parent)
                            frontier.append(parent)
            names = await self.groups_of.display_names(conn, ctx.tenant_id, indirect) if indirect else {}
            groups.extend(
                self._group_entry(ctx, group_id, names.get(group_id, ""), "indirect") for group_id in indirect
            )

    async def before_delete(self, conn: AsyncConnection, ctx: RequestContext, resource_id: str) -> None:
        await roles.user_deleting(conn, ctx, resource_id)
        await remove_from_all_groups(conn, ctx, resource_id)
