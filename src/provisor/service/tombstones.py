"""The `tombstone` delete policy (docs/delete-policy.md): DELETE keeps the resource out of SCIM for
`tombstone_days`, and a POST of the same account in that time restores the same id.

An application keys its own data (files, history, grants it made itself) by the SCIM id; an IdP
that deletes an account and creates it again (unassigned and reassigned, a sync rule that flapped)
would otherwise orphan all of it under a new id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from provisor.clock import format_instant, now
from provisor.events.model import EventOp
from provisor.schema.coerce import coerce_resource
from provisor.service.context import RequestContext
from provisor.service.projection import Projection
from provisor.service.resource_owner import ResourceOwner
from provisor.storage import members as member_store
from provisor.storage import resources as store
from provisor.storage import tombstones as tomb_store
from provisor.storage.handles import AsyncConnection
from provisor.storage.indexing import MAX_INDEXED_LENGTH, normalise
from provisor.storage.interfaces import Members, ResourceWrites, Tombstones
from provisor.storage.resources import StoredResource
from provisor.storage.tombstones import Tombstone
from provisor.storage.transactions import read_transaction, write_transaction

#: Storage as the contract names it (storage/interfaces/).
_writes: ResourceWrites = store
_members: Members = member_store
_tombstones: Tombstones = tomb_store

#: Retention when the tenant sets `delete_policy=tombstone` without `tombstone_days`.
DEFAULT_TOMBSTONE_DAYS = 30
#: The attribute a POST without `externalId` is matched on, per resource type.
_NAME_ATTRIBUTE = {"User": "userName", "Group": "displayName"}


def tombstoning(ctx: RequestContext) -> bool:
    return bool(ctx.setting("delete_policy", "hard") == "tombstone")


def _match_keys(service: ResourceOwner, doc: dict[str, Any]) -> tuple[str | None, str | None]:
    """(externalId, normalised name) of a stored-form document, as tombstones are keyed on."""
    external = doc.get("externalId")
    external_id = external if isinstance(external, str) and external else None
    name_norm = None
    attr_name = _NAME_ATTRIBUTE.get(service.rt.name)
    attribute = service.rt.schema.attribute(attr_name) if attr_name else None
    value = doc.get(attribute.name) if attribute is not None else None
    if attribute is not None and isinstance(value, str) and value:
        name_norm = normalise(attribute, value)[:MAX_INDEXED_LENGTH]
    return external_id, name_norm


async def bury(
    service: ResourceOwner, conn: AsyncConnection, ctx: RequestContext, current: StoredResource, at: str
) -> dict[str, Any]:
    """Keep `current` as a tombstone (before its row is deleted); returns the `deleted` payload."""
    days = int(ctx.setting("tombstone_days", DEFAULT_TOMBSTONE_DAYS))
    purge_after = format_instant(datetime.now(UTC) + timedelta(days=days))
    groups = await _members.groups_containing(conn, ctx.tenant_id, current.id)
    external_id, name_norm = _match_keys(service, current.doc)
    await _tombstones.bury(
        conn,
        tenant_id=ctx.tenant_id,
        tombstone=Tombstone(
            current.id, current.resource_type, current.version, current.created, at, current.doc, groups
        ),
        purge_after=purge_after,
        external_id=external_id,
        name_norm=name_norm,
    )
    return {"tombstone": True, "purgeAfter": purge_after}


async def restore(
    service: ResourceOwner, ctx: RequestContext, body: dict[str, Any], projection: Projection
) -> tuple[StoredResource, dict[str, Any]] | None:
    """POST under the tombstone policy: when an unexpired tombstone matches the body's `externalId`
    (or, without one, its userName / displayName), bring the resource back under its old id with
    the new body and the next version; None when none matches (the caller creates)."""
    dropped: list[str] = []
    doc, extra = service.split_body(coerce_resource(service.registry, service.rt, body, dropped=dropped))
    external_id, name_norm = _match_keys(service, doc)
    if external_id is None and name_norm is None:
        return None
    at = now()
    keys: dict[str, Any] = {
        "tenant_id": ctx.tenant_id,
        "resource_type": service.rt.name,
        "external_id": external_id,
        "name_norm": None if external_id is not None else name_norm,
        "at": at,
    }
    async with read_transaction(service.engine) as conn:
        if not await _tombstones.has_match(conn, **keys):
            return None
    async with write_transaction(service.engine) as conn:
        found = await _tombstones.take_match(conn, **keys)
        if found is None:
            return None
        stored = await _writes.insert_resource(
            conn,
            tenant_id=ctx.tenant_id,
            resource_type=service.rt.name,
            resource_id=found.id,
            at=at,
            doc=doc,
            index=service.index_for(ctx, doc),
            version=found.version + 1,
            created=found.created,
        )
        payload = service.event_payload(ctx, stored, None)
        payload["previousGroups"] = found.groups
        await service.record_event(conn, ctx, stored, EventOp.RESTORED, at, payload=payload)
        await service.store_extra(conn, ctx, stored, extra, replace=True)
        out = await service.render_one(conn, ctx, stored, projection)
    ctx.unknown_attributes.extend(dropped)
    return stored, out
