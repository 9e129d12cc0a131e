"""Adopting accounts that `provisor import` loaded before an IdP was connected.

Imported accounts are unmanaged: the first `POST /Users` from an IdP with the same userName takes
the account over (same id, attributes replaced as by PUT, now managed) instead of failing with
409, so turning on provisioning does not duplicate or orphan the existing directory.
"""

from __future__ import annotations

import logging
from typing import Any

from provisor.clock import now
from provisor.events.model import EventOp
from provisor.schema.coerce import coerce_resource
from provisor.service.context import RequestContext
from provisor.service.projection import Projection
from provisor.service.resource_owner import ResourceOwner
from provisor.storage import batch as batch_store
from provisor.storage import resources as store
from provisor.storage.indexing import normalise
from provisor.storage.interfaces import ManagedAccounts, ResourceWrites
from provisor.storage.resources import StoredResource
from provisor.storage.transactions import write_transaction

#: Storage as the contract names it (storage/interfaces/).
_writes: ResourceWrites = store
_managed: ManagedAccounts = batch_store

log = logging.getLogger("provisor.adoption")


async def adopt_user(
    service: ResourceOwner, ctx: RequestContext, body: dict[str, Any], projection: Projection
) -> tuple[StoredResource, dict[str, Any]] | None:
    """Adopt the unmanaged user whose userName matches `body`; None when there is none to adopt."""
    user_name = body.get("userName") if isinstance(body, dict) else None
    attribute = service.rt.schema.attribute("userName")
    if not isinstance(user_name, str) or attribute is None:
        return None
    norm = normalise(attribute, user_name)
    at = now()
    async with write_transaction(service.engine) as conn:
        found = await _managed.find_by_index(conn, ctx.tenant_id, service.rt.name, "userName", [norm])
        resource_id = found.get(norm)
        if resource_id is None or await _managed.is_managed(conn, ctx.tenant_id, resource_id) is not False:
            return None
        current = await _writes.fetch_resource(
            conn, ctx.tenant_id, service.rt.name, resource_id, for_update=True
        )
        if current is None:
            return None
        doc, _ = service.split_body(coerce_resource(service.registry, service.rt, body, existing=current.doc))
        stored = await _writes.update_resource(
            conn, tenant_id=ctx.tenant_id, current=current, at=at, doc=doc, index=service.index_for(ctx, doc)
        )
        await _managed.set_managed(conn, ctx.tenant_id, resource_id, True)
        await service.record_event(conn, ctx, stored, EventOp.ADOPTED, at)
        out = await service.render_one(conn, ctx, stored, projection)
    log.info(
        "adopted unmanaged %s %s (userName %r) in tenant %s by %s",
        service.rt.name,
        resource_id,
        user_name,
        ctx.tenant_id,
        ctx.actor or "-",
    )
    return stored, out
