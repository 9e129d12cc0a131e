"""`POST /Bulk`: limits first (nothing is written when a request is too large), then the job."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from provisor.config import Settings
from provisor.errors import ScimError
from provisor.http.body import read_json
from provisor.http.responses import scim_json
from provisor.protocol.bulk import parse_bulk_request, too_large
from provisor.service.bulk import run_bulk
from provisor.service.context import RequestContext
from provisor.service.resources import ResourceService


async def handle_bulk(
    request: Request,
    ctx: RequestContext,
    segments: list[str],
    settings: Settings,
    services: dict[str, ResourceService],
) -> Response:
    if len(segments) != 1:
        raise ScimError(404, "no such endpoint")
    if request.method != "POST":
        raise ScimError(405, "method not allowed here; allowed: POST")
    limit = settings.bulk_max_payload_bytes
    try:
        body = await read_json(request, limit, settings.max_json_depth)
    except ScimError as error:
        if error.status == 413:
            raise too_large(f"The size of the bulk operation exceeds the maxPayloadSize ({limit}).") from None
        raise
    by_segment = {s.rt.endpoint.strip("/").lower(): s for s in services.values()}
    bulk = parse_bulk_request(
        body, max_operations=settings.bulk_max_operations, segments=frozenset(by_segment)
    )
    return scim_json(await run_bulk(ctx, bulk, by_segment))
