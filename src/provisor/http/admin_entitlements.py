"""The entitlement catalogue's admin API (docs/entitlements.md), under `/admin/v1`, admin tokens only.

`PUT /entitlements/{type}/{id}?tenant=T` with `{"displayName": ..., "type": ..., "description": ...}`
defines or replaces one entry (201 when new, 200 otherwise); `DELETE` removes it (204, or 404);
`GET /entitlements?tenant=T` and `GET /entitlements/{type}?tenant=T` list them; `GET .../{id}` reads one.
`{type}` is `Entitlement` or `Role` (any case, singular or plural).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from provisor.errors import invalid_value, not_found
from provisor.http.body import read_object
from provisor.schema.registry import CATALOGUE_TYPES
from provisor.service.entitlements import CatalogueService, catalogue_type, entry_json

if TYPE_CHECKING:
    from provisor.container import Provisor

Guard = Callable[[Request, Callable[[], Awaitable[Response]]], Awaitable[Response]]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _tenant(request: Request) -> str:
    tenant = request.query_params.get("tenant")
    if not tenant:
        raise invalid_value("the tenant query parameter is required (?tenant=T)")
    return tenant


def entitlement_routes(provisor: Provisor, guarded: Guard) -> list[BaseRoute]:
    catalogue = CatalogueService(provisor.engine, provisor.registry)
    settings = provisor.settings

    async def listing(request: Request) -> Response:
        async def work() -> Response:
            kind = request.path_params.get("kind")
            types = (catalogue_type(kind),) if kind else CATALOGUE_TYPES
            entries = await catalogue.entries(_tenant(request), types)
            return _json({"entitlements": [entry_json(e) for e in entries]})

        return await guarded(request, work)

    async def item(request: Request) -> Response:
        async def work() -> Response:
            tenant = _tenant(request)
            kind = catalogue_type(request.path_params["kind"])
            entry_id = request.path_params["entry_id"]
            if request.method == "PUT":
                body = await read_object(request, settings.max_body_bytes, settings.max_json_depth)
                entry, created = await catalogue.define(
                    tenant, kind, entry_id, body.get("displayName"), body.get("type"), body.get("description")
                )
                return _json(entry_json(entry), 201 if created else 200)
            if request.method == "DELETE":
                if not await catalogue.remove(tenant, kind, entry_id):
                    raise not_found(f"{kind} {entry_id} not found in tenant {tenant}")
                return Response(status_code=204)
            for entry in await catalogue.entries(tenant, (kind,)):
                if entry.id == entry_id:
                    return _json(entry_json(entry))
            raise not_found(f"{kind} {entry_id} not found in tenant {tenant}")

        return await guarded(request, work)

    return [
        Route("/entitlements", listing, methods=["GET"]),
        Route("/entitlements/{kind}", listing, methods=["GET"]),
        Route("/entitlements/{kind}/{entry_id}", item, methods=["GET", "PUT", "DELETE"]),
    ]
