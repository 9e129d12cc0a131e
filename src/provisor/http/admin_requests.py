"""`GET /admin/v1/requests?tenant=&errors=&after=&limit=`: the request log (admin tokens only).

Answers `{"requests": [...], "next": <id>}` oldest first; pass `next` back as `after` to page on.
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
from provisor.service.request_log import RequestLogWriter
from provisor.storage.request_log import RequestFilter, read_requests
from provisor.storage.transactions import read_transaction

if TYPE_CHECKING:
    from provisor.http.app import Provisor

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
            async with read_transaction(provisor.engine) as conn:
                rows = await read_requests(conn, after, limit, where)
            body: dict[str, Any] = {"requests": rows, "next": rows[-1]["id"] if rows else after}
            return Response(orjson.dumps(body), media_type="application/json")

        return await guarded(request, work)

    return Route("/requests", requests, methods=["GET"])
