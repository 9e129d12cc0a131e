"""`GET /admin/v1/requests?tenant=&errors=&after=&limit=`: the request log (admin tokens only).

Answers `{"requests": [...], "next": <id>}` oldest first; pass `next` back as `after` to page on.
Each row names the `unknown_attributes` its request carried (a list, or null).

`GET /admin/v1/unknown-attributes?tenant=T`: how often each unknown attribute came for a tenant,
`{"tenant": T, "attributes": [{"name", "count", "last_seen"}...]}`, the most frequent first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from provisor.errors import invalid_value
from provisor.http.admin_params import flag_param, tenant_param
from provisor.service.request_log import RequestFilter, RequestLogWriter, read_requests, read_unknown_counts

if TYPE_CHECKING:
    from provisor.container import Provisor

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
Guard = Callable[[Request, Callable[[], Awaitable[Response]]], Awaitable[Response]]


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_value(f"{name} must be an integer") from None
    if not 0 <= value <= high:
        raise invalid_value(f"{name} must be between 0 and {high}")
    return value


def requests_route(provisor: Provisor, guarded: Guard) -> Route:
    writer: RequestLogWriter = provisor.request_log

    async def requests(request: Request) -> Response:
        async def work() -> Response:
            after = _int(request, "after", 0, 2**63 - 1)
            limit = max(1, _int(request, "limit", DEFAULT_LIMIT, MAX_LIMIT))
            where = RequestFilter(
                tenant=await tenant_param(request, provisor.engine), errors_only=flag_param(request, "errors")
            )
            await writer.flush()  # this worker's own queued rows become visible first
            rows = await read_requests(provisor.engine, after, limit, where)
            body: dict[str, Any] = {"requests": rows, "next": rows[-1]["id"] if rows else after}
            return Response(orjson.dumps(body), media_type="application/json")

        return await guarded(request, work)

    return Route("/requests", requests, methods=["GET"])


def unknown_attributes_route(provisor: Provisor, guarded: Guard) -> Route:
    writer: RequestLogWriter = provisor.request_log

    async def unknown_attributes(request: Request) -> Response:
        async def work() -> Response:
            tenant = request.query_params.get("tenant")
            if not tenant:
                raise invalid_value("tenant is required: ?tenant=<tenant id>")
            await writer.flush()  # this worker's own counts become visible first
            rows = await read_unknown_counts(provisor.engine, tenant)
            body = {"tenant": tenant, "attributes": rows}
            return Response(orjson.dumps(body), media_type="application/json")

        return await guarded(request, work)

    return Route("/unknown-attributes", unknown_attributes, methods=["GET"])
