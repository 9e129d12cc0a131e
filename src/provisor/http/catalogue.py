"""`/Entitlements` and `/Roles` over SCIM: list, search and read; every write is 405.

The application owns its catalogue (service/entitlements.py); an IdP only reads it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from provisor.errors import ScimError
from provisor.http.body import read_json
from provisor.http.responses import scim_json
from provisor.protocol.query import ListQuery, from_query_params, from_search_request
from provisor.schema.model import ResourceType
from provisor.service.context import RequestContext
from provisor.service.entitlements import CatalogueService, read_only
from provisor.service.projection import Projection
from provisor.service.render import location

SEARCH = ".search"


async def handle_catalogue(
    request: Request,
    ctx: RequestContext,
    catalogue: CatalogueService,
    rt: ResourceType,
    segments: list[str],
    *,
    default_count: int,
    max_count: int,
    max_body_bytes: int,
    max_json_depth: int,
) -> Response:
    method = request.method
    if len(segments) == 1:
        if method != "GET":
            raise read_only(rt)
        query: ListQuery = from_query_params(
            request.query_params, default_count=default_count, max_count=max_count
        )
        return scim_json(await catalogue.list(ctx, rt, query))
    if len(segments) == 2 and segments[1].lower() == SEARCH:
        if method != "POST":
            raise ScimError(405, "method not allowed here; allowed: POST")
        body = await read_json(request, max_body_bytes, max_json_depth)
        query = from_search_request(body, default_count=default_count, max_count=max_count)
        return scim_json(await catalogue.list(ctx, rt, query))
    if len(segments) == 2:
        if method != "GET":
            raise read_only(rt)
        params = {k.lower(): v for k, v in request.query_params.items()}
        projection = Projection(
            catalogue.registry, rt, params.get("attributes") or None, params.get("excludedattributes") or None
        )
        out = await catalogue.get(ctx, rt, segments[1], projection)
        return scim_json(out, 200, {"Location": location(ctx.base_url, rt, segments[1])})
    raise ScimError(404, "no such endpoint")
