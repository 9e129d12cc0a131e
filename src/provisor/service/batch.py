"""Batched creation: validate many resources, then write them in one transaction.

Used by Bulk (runs of independent POSTs) and by `provisor import`. Validation happens before the
transaction so that one bad body never costs the batch; a uniqueness clash inside the batch makes
the caller fall back to one transaction per resource, so results stay per-operation correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from provisor.clock import now
from provisor.events.model import EventOp, event_row
from provisor.ids import new_resource_id
from provisor.schema.coerce import coerce_resource
from provisor.schema.model import ResourceType
from provisor.schema.registry import Registry
from provisor.service.context import RequestContext
from provisor.service.render import render
from provisor.storage import batch as store
from provisor.storage.batch import NewRow
from provisor.storage.handles import AsyncConnection, AsyncEngine
from provisor.storage.interfaces import Batches
from provisor.storage.resources import StoredResource
from provisor.storage.transactions import write_transaction

#: Storage as the contract names it (storage/interfaces/).
_store: Batches = store


class CreatingService(Protocol):
    """What batched creation needs of a resource service (service/resources.py `ResourceService`),
    named here so that this module does not import that one, which imports this one."""

    engine: AsyncEngine
    registry: Registry
    rt: ResourceType

    def split_body(self, doc: dict[str, Any]) -> tuple[dict[str, Any], Any]: ...

    def index_for(self, ctx: RequestContext, doc: dict[str, Any]) -> list[tuple[str, str, bool]]: ...

    async def store_extra(
        self, conn: AsyncConnection, ctx: RequestContext, stored: StoredResource, extra: Any, *, replace: bool
    ) -> bool: ...


@dataclass(frozen=True)
class PreparedCreate:
    """A validated POST body: the stored document, what is stored elsewhere, and the row to insert."""

    row: NewRow
    extra: Any


def prepare_create(
    service: CreatingService,
    ctx: RequestContext,
    body: dict[str, Any],
    *,
    resource_id: str | None = None,
    managed: bool = True,
) -> PreparedCreate:
    """Validate a body as POST would; `resource_id` is only given by import (keeps exported ids)."""
    doc, extra = service.split_body(
        coerce_resource(service.registry, service.rt, body, dropped=ctx.unknown_attributes)
    )
    row = NewRow(
        id=resource_id or new_resource_id(),
        doc=doc,
        index=list(service.index_for(ctx, doc)),
        managed=managed,
    )
    return PreparedCreate(row, extra)


async def create_many(
    service: CreatingService, ctx: RequestContext, items: Sequence[PreparedCreate]
) -> list[StoredResource]:
    """Insert all items, their extras (group members) and `created` events in one transaction.

    Raises the first ScimError (e.g. 409 uniqueness, or an unknown member) and writes nothing then.
    """
    if not items:
        return []
    at = now()
    rt = service.rt
    batch = _store.prepare_batch(
        tenant_id=ctx.tenant_id, resource_type=rt.name, at=at, rows=[i.row for i in items]
    )
    created = [
        event_row(
            tenant_id=ctx.tenant_id,
            at=at,
            resource_type=rt.name,
            resource_id=resource.id,
            op=EventOp.CREATED,
            version=resource.version,
            actor=ctx.actor,
            payload=render(rt, resource, ctx.base_url),
        )
        for resource in batch.stored
    ]
    if not any(item.extra for item in items):
        return await _store.write_batch(service.engine, batch, created)
    async with write_transaction(service.engine) as conn:
        stored = await _store.insert_many(conn, batch)
        for resource, item in zip(stored, items, strict=True):
            if item.extra:
                await service.store_extra(conn, ctx, resource, item.extra, replace=True)
        await _store.append_events(conn, created)
    return stored
