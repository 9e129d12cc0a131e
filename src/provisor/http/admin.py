"""The management API under `/admin/v1` (admin tokens only): the change feed.

`GET /events?after=&limit=&type=&op=&tenant=&wait=` pages through the outbox in commit-safe seq
order (`consumer=NAME` instead of `after` resumes from a named consumer's position). `type`, `op`
and `tenant` must name something that exists (400 otherwise; `Users` and `Groups` are aliases of
`User` and `Group`). With `wait`, the request long-polls: it re-reads every 200 ms and answers as
soon as there is at least one event, or empty after `wait` seconds (at most 30).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from provisor.errors import ScimError, invalid_value
from provisor.http.admin_consumers import consumer_routes, feed_start
from provisor.http.admin_entitlements import entitlement_routes
from provisor.http.admin_params import ops_param, tenant_param, type_param
from provisor.http.admin_requests import requests_route, unknown_attributes_route
from provisor.http.admin_roles import role_routes
from provisor.http.admin_setup_links import setup_link_routes
from provisor.http.middleware import internal_error, request_id_of
from provisor.http.responses import error_response
from provisor.service.database import Database
from provisor.service.errors import database_fault
from provisor.service.event_feed import EventFilter, EventPage, read_page

if TYPE_CHECKING:
    from provisor.container import Provisor

log = logging.getLogger("provisor.admin")

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.2


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_value(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise invalid_value(f"{name} must be between {low} and {high}")
    return value


def _wait_param(request: Request) -> float:
    raw = request.query_params.get("wait")
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise invalid_value("wait must be a number of seconds") from None
    if not 0 <= value <= MAX_WAIT_SECONDS:
        raise invalid_value(f"wait must be between 0 and {MAX_WAIT_SECONDS:g}")
    return value


async def _filter(request: Request, engine: Database) -> EventFilter:
    return EventFilter(
        tenant=await tenant_param(request, engine),
        resource_type=type_param(request),
        ops=ops_param(request),
    )


def admin_routes(provisor: Provisor) -> list[BaseRoute]:
    async def guarded(request: Request, work: Any) -> Response:
        try:
            await provisor.auth.authenticate(request, "admin")
            response: Response = await work()
            return response
        except ScimError as error:
            headers = {"WWW-Authenticate": 'Bearer realm="provisor"'} if error.status == 401 else None
            return error_response(error, headers or getattr(error, "headers", None))
        except Exception as exc:
            fault = database_fault(exc)
            if fault is not None:
                log.warning("%s %s: %s (%s)", request.method, request.url.path, fault.detail, exc)
                return error_response(fault, getattr(fault, "headers", None))
            request_id = request_id_of(request.scope)
            log.exception("unhandled error in %s %s (request id %s)", request.method, request.url, request_id)
            return error_response(internal_error(request_id))

    async def events(request: Request) -> Response:
        async def work() -> Response:
            after = _int_param(request, "after", 0, 0, 2**63 - 1)
            limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            wait = _wait_param(request)
            where = await _filter(request, provisor.engine)
            if request.query_params.get("consumer"):
                after, where = await feed_start(provisor, request, where)
            deadline = time.monotonic() + wait
            while True:
                page: EventPage = await read_page(provisor.engine, after, limit, where)
                if page.events or time.monotonic() >= deadline or await request.is_disconnected():
                    break
                # Filtered-out events still advance the cursor, so the next read starts later.
                after = page.next
                await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            return _json({"events": [e.to_json() for e in page.events], "next": page.next})

        return await guarded(request, work)

    return [
        Route("/events", events, methods=["GET"]),
        requests_route(provisor, guarded),
        unknown_attributes_route(provisor, guarded),
        *setup_link_routes(provisor, guarded),
        *consumer_routes(provisor, guarded),
        *entitlement_routes(provisor, guarded),
        *role_routes(provisor, guarded),
    ]
