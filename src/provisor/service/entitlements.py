"""The entitlement catalogue (docs/entitlements.md): what the application offers, as data.

The application defines its entitlements and roles per tenant (admin API, CLI); an IdP lists them,
read-only, under `/Entitlements` and `/Roles`, then assigns them through a user's `entitlements`
and `roles`. Lists are paged in `id` order; a filter or `sortBy` runs in Python over the tenant's
catalogue with the same evaluator that defines filter semantics everywhere else (filter/evaluate.py),
which is cheap at catalogue sizes (tens to a few thousand entries).
"""

from __future__ import annotations

from typing import Any

from provisor.clock import now
from provisor.errors import ScimError, invalid_value, not_found
from provisor.filter import bind, parse_filter
from provisor.filter.evaluate import matches
from provisor.protocol.query import ListQuery, list_response
from provisor.schema.model import ResourceType
from provisor.schema.registry import CATALOGUE_TYPES, Registry
from provisor.service.context import RequestContext
from provisor.service.projection import Projection
from provisor.service.render import location
from provisor.storage import entitlements as store
from provisor.storage import tenants as tenant_store
from provisor.storage.entitlements import CatalogueEntry
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import Entitlements, Tenants
from provisor.storage.transactions import read_transaction, write_transaction

#: Storage as the contract names it (storage/interfaces/).
_store: Entitlements = store
_tenants: Tenants = tenant_store

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 500
MAX_TYPE_LENGTH = 200


def catalogue_type(name: str) -> str:
    """`Entitlement`/`Role` from any case, singular or plural; invalidValue otherwise."""
    lowered = name.strip("/").lower()
    for canonical in CATALOGUE_TYPES:
        if lowered in (canonical.lower(), canonical.lower() + "s"):
            return canonical
    raise invalid_value(f"unknown catalogue type {name!r}; use Entitlement or Role")


def _text(name: str, value: Any, limit: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid_value(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise invalid_value(f"{name} is longer than {limit} characters")
    return value


def entry_json(entry: CatalogueEntry) -> dict[str, Any]:
    """The admin API's and the CLI's view of one entry."""
    return {
        "resourceType": entry.resource_type,
        "id": entry.id,
        "displayName": entry.display_name,
        "type": entry.type,
        "description": entry.description,
        "created": entry.created,
        "lastModified": entry.last_modified,
    }


def render_entry(rt: ResourceType, entry: CatalogueEntry, base_url: str) -> dict[str, Any]:
    """The SCIM resource, in the shape Okta's guide shows (`schemas`, `id`, `displayName`, `type`)."""
    out: dict[str, Any] = {"schemas": [rt.schema.id], "id": entry.id, "displayName": entry.display_name}
    if entry.type is not None:
        out["type"] = entry.type
    if entry.description is not None:
        out["description"] = entry.description
    out["meta"] = {
        "resourceType": rt.name,
        "created": entry.created,
        "lastModified": entry.last_modified,
        "location": location(base_url, rt, entry.id),
    }
    return out


def _sorted(
    registry: Registry, rt: ResourceType, docs: list[dict[str, Any]], sort_by: str, descending: bool
) -> list[dict[str, Any]]:
    path = registry.resolve(rt, sort_by)
    if path is None or path.sub_attribute is not None or path.attribute.is_complex:
        raise invalid_value(f"cannot sort by {sort_by!r}")
    name = path.attribute.name
    present = [d for d in docs if isinstance(d.get(name), str)]
    absent = [d for d in docs if not isinstance(d.get(name), str)]
    present.sort(key=lambda d: str(d[name]).lower(), reverse=descending)
    # RFC 7644 section 3.4.2.3: resources without the attribute sort last in either order.
    return present + absent


class CatalogueService:
    def __init__(
        self,
        engine: AsyncEngine,
        registry: Registry,
        *,
        max_filter_length: int = 4096,
        max_filter_depth: int = 32,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.max_filter_length = max_filter_length
        self.max_filter_depth = max_filter_depth

    # ---- the application's side: define, remove, list --------------------------------------------

    async def define(
        self,
        tenant_id: str,
        type_name: str,
        entry_id: str,
        display_name: Any,
        kind: Any = None,
        description: Any = None,
    ) -> tuple[CatalogueEntry, bool]:
        """Create or replace one entry; returns it and whether it was new. The tenant must exist."""
        resource_type = catalogue_type(type_name)
        checked_id = _text("id", entry_id, MAX_ID_LENGTH, required=True)
        if checked_id is not None and ("/" in checked_id or not checked_id.isprintable()):
            # It is a path segment of /Entitlements/{id}: a slash or a control character would
            # make the entry unreadable over SCIM.
            raise invalid_value("id must not contain '/' or control characters")
        name = _text("displayName", display_name, MAX_NAME_LENGTH, required=True)
        assert checked_id is not None and name is not None
        kind_text = _text("type", kind, MAX_TYPE_LENGTH, required=False)
        description_text = _text("description", description, 10_000, required=False)
        async with write_transaction(self.engine) as conn:
            if not await _tenants.tenant_exists(conn, tenant_id):
                raise not_found(f"tenant {tenant_id} not found")
            created = await _store.define(
                conn,
                tenant_id=tenant_id,
                resource_type=resource_type,
                entry_id=checked_id,
                display_name=name,
                type_=kind_text,
                description=description_text,
                at=now(),
            )
            entry = await _store.get(conn, tenant_id, resource_type, checked_id)
        assert entry is not None
        return entry, created

    async def remove(self, tenant_id: str, type_name: str, entry_id: str) -> bool:
        """Remove one entry. Users keep values already assigned (docs/entitlements.md)."""
        resource_type = catalogue_type(type_name)
        async with write_transaction(self.engine) as conn:
            return await _store.remove(conn, tenant_id, resource_type, entry_id)

    async def entries(
        self, tenant_id: str, type_names: tuple[str, ...] = CATALOGUE_TYPES
    ) -> list[CatalogueEntry]:
        types = [catalogue_type(name) for name in type_names]
        async with read_transaction(self.engine) as conn:
            if not await _tenants.tenant_exists(conn, tenant_id):
                raise not_found(f"tenant {tenant_id} not found")
            out: list[CatalogueEntry] = []
            for resource_type in types:
                out.extend(await _store.page(conn, tenant_id, resource_type, 0, None))
        return out

    # ---- the IdP's side: read-only SCIM ---------------------------------------------------------

    async def list(self, ctx: RequestContext, rt: ResourceType, query: ListQuery) -> dict[str, Any]:
        if query.cursor is not None:
            raise invalid_value(f"cursor pagination is not available on {rt.endpoint}; use startIndex")
        projection = Projection(self.registry, rt, query.attributes, query.excluded_attributes)
        offset = query.start_index - 1
        if query.filter is None and query.sort_by is None:
            async with read_transaction(self.engine) as conn:
                total = await _store.count(conn, ctx.tenant_id, rt.name)
                rows = (
                    await _store.page(conn, ctx.tenant_id, rt.name, offset, query.count)
                    if query.count
                    else []
                )
            resources = [projection.apply(render_entry(rt, row, ctx.base_url)) for row in rows]
            return list_response(resources, total, query.start_index)
        condition = None
        if query.filter:
            parsed = parse_filter(
                query.filter, max_length=self.max_filter_length, max_depth=self.max_filter_depth
            )
            condition = bind(parsed, self.registry, rt)
        async with read_transaction(self.engine) as conn:
            rows = await _store.page(conn, ctx.tenant_id, rt.name, 0, None)
        full = [render_entry(rt, row, ctx.base_url) for row in rows]
        if condition is not None:
            full = [doc for doc in full if matches(condition, doc)]
        if query.sort_by is not None:
            full = _sorted(self.registry, rt, full, query.sort_by, query.descending)
        window = full[offset : offset + query.count]
        return list_response([projection.apply(doc) for doc in window], len(full), query.start_index)

    async def get(
        self, ctx: RequestContext, rt: ResourceType, entry_id: str, projection: Projection
    ) -> dict[str, Any]:
        async with read_transaction(self.engine) as conn:
            entry = await _store.get(conn, ctx.tenant_id, rt.name, entry_id)
        if entry is None:
            raise not_found(f"{rt.name} {entry_id} not found")
        return projection.apply(render_entry(rt, entry, ctx.base_url))


class ReadOnly(ScimError):
    """405 on a catalogue endpoint, with the `Allow` header RFC 9110 section 15.5.6 asks for."""

    def __init__(self, rt: ResourceType) -> None:
        super().__init__(
            405, f"{rt.endpoint} is read-only: the application defines its {rt.name}s (docs/entitlements.md)"
        )
        self.headers = {"Allow": "GET"}


def read_only(rt: ResourceType) -> ScimError:
    return ReadOnly(rt)
