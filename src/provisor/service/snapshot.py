"""The tenant's users and groups as one consistent NDJSON stream (`GET /admin/v1/snapshot`).

The rows come from `storage/snapshot.py`'s transaction, whose view is exactly the events up to the
seq it reports (the argument is in that module's docstring). Pages are keyset on id inside that
one transaction, so memory stays bounded by a page whatever the tenant's size. Users are rendered
as `provisor export` renders them (without the derived `groups`: the group lines carry membership),
groups with their members, as GET would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.service.context import RequestContext
from provisor.service.render import render
from provisor.service.resources import Projection, ResourceService
from provisor.storage.snapshot import page_after

PAGE = 1000
ORDER = ("User", "Group")


async def snapshot_lines(
    conn: AsyncConnection, services: dict[str, ResourceService], ctx: RequestContext, *, page: int = PAGE
) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of rendered resources, users first, then groups with their members."""
    for name in ORDER:
        service = services[name]
        # The default projection has a precomputed plan (schema/projection.py); an excludedAttributes
        # list would walk the schema per resource (5x slower at 100,000 users). Users' `groups` are
        # simply not derived, so they are absent all the same.
        projection = Projection(service.registry, service.rt, None, None)
        derive = name != "User"
        after: str | None = None
        while True:
            rows = await page_after(conn, ctx.tenant_id, name, after, page)
            if not rows:
                break
            derived = await service.derived(conn, ctx, [r.id for r in rows], projection) if derive else {}
            yield [
                projection.apply(render(service.rt, row, ctx.base_url, derived.get(row.id))) for row in rows
            ]
            if len(rows) < page:
                break
            after = rows[-1].id
