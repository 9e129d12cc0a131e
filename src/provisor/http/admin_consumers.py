"""Named consumers, the deprovisioning report and the snapshot, under `/admin/v1` (admin tokens).

- `GET /consumers`, `GET|PUT|DELETE /consumers/{name}`: durable feed positions. `PUT` takes
  `{"seq": N}` (and, on first commit only, an optional `"tenant"` scope); a lower seq is 409 unless
  `?force=true`, a seq past the log's head is 400.
- `GET /events?consumer=NAME` (admin.py) resumes from the consumer's position and scope.
- `GET /deprovisioning?tenant=T[&unacknowledged=true][&window=SECONDS][&limit=N]`: see
  service/deprovisioning.py.
- `GET /snapshot?tenant=T`: NDJSON, `{"seq": N}` then one line per user and group, consistent with
  event N (storage/snapshot.py explains why), streamed from one transaction.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from provisor.errors import invalid_value
from provisor.service import event_feed
from provisor.service.deprovisioning import DEFAULT_WINDOW_SECONDS, tenant_report
from provisor.service.event_feed import EventFilter
from provisor.service.snapshot import open_snapshot

if TYPE_CHECKING:
    from provisor.container import Provisor

Guard = Callable[[Request, Callable[[], Awaitable[Response]]], Awaitable[Response]]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MAX_LIMIT = 10_000
ADMIN_PREFIX, SCIM_PREFIX = "/admin/v1", "/scim/v2"  # as http/app.py mounts them


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _name(request: Request) -> str:
    name = str(request.path_params["name"])
    if not NAME.match(name):
        raise invalid_value(
            "a consumer name is 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").lower()
    if raw not in ("", "true", "false", "1", "0"):
        raise invalid_value(f"{name} must be true or false")
    return raw in ("true", "1")


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_value(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise invalid_value(f"{name} must be between {low} and {high}")
    return value


def _scim_base(provisor: Provisor, request: Request) -> str:
    """The SCIM API's base URL for `meta.location`: this request's root, with the admin mount's
    path swapped for the SCIM one (both sit side by side, also when Provisor is mounted inside
    another app)."""
    base = provisor.api.base_url(request)
    if provisor.settings.base_url or not base.endswith(ADMIN_PREFIX):
        return base
    return base.removesuffix(ADMIN_PREFIX) + SCIM_PREFIX


def _tenant(request: Request) -> str:
    tenant = request.query_params.get("tenant")
    if not tenant:
        raise invalid_value("tenant is required")
    return tenant


async def _commit_body(request: Request) -> tuple[int, str | None]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise invalid_value('the body must be JSON: {"seq": N}') from None
    seq = body.get("seq") if isinstance(body, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise invalid_value('the body must be {"seq": N} with N an integer')
    tenant = body.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise invalid_value("tenant must be a string")
    return seq, tenant


async def feed_start(provisor: Provisor, request: Request, where: EventFilter) -> tuple[int, EventFilter]:
    """The `after` and filter of `GET /events?consumer=NAME`: its position, within its scope."""
    name = request.query_params["consumer"]
    if request.query_params.get("after"):
        raise invalid_value("pass either consumer or after, not both")
    return await event_feed.consumer_start(provisor.engine, name, where)


def consumer_routes(provisor: Provisor, guarded: Guard) -> list[BaseRoute]:
    engine = provisor.engine

    async def listing(request: Request) -> Response:
        async def work() -> Response:
            found, head = await event_feed.consumers(engine)
            return _json({"consumers": [{**c.to_json(), "lag": head - c.seq} for c in found], "head": head})

        return await guarded(request, work)

    async def one(request: Request) -> Response:
        async def work() -> Response:
            name = _name(request)
            if request.method == "PUT":
                seq, tenant = await _commit_body(request)
                consumer, head = await event_feed.commit(
                    engine, name, seq, tenant=tenant, force=_flag(request, "force")
                )
            elif request.method == "DELETE":
                await event_feed.delete_consumer(engine, name)
                return Response(status_code=204)
            else:
                consumer, head = await event_feed.consumer(engine, name)
            return _json({**consumer.to_json(), "lag": head - consumer.seq, "head": head})

        return await guarded(request, work)

    async def deprovisioning(request: Request) -> Response:
        async def work() -> Response:
            unacknowledged = _flag(request, "unacknowledged")
            window = _int(request, "window", DEFAULT_WINDOW_SECONDS, 1, 10 * 365 * 86400)
            limit = _int(request, "limit", 1000, 1, MAX_LIMIT)
            body = await tenant_report(
                engine, _tenant(request), unacknowledged=unacknowledged, window_seconds=window, limit=limit
            )
            return _json(body)

        return await guarded(request, work)

    async def snapshot(request: Request) -> Response:
        async def work() -> Response:
            tenant = _tenant(request)
            snapshot = await open_snapshot(engine, provisor.services, tenant, _scim_base(provisor, request))

            async def lines() -> AsyncIterator[bytes]:
                try:
                    yield orjson.dumps({"seq": snapshot.seq}) + b"\n"
                    async for page in snapshot.pages():
                        yield b"".join(orjson.dumps(doc) + b"\n" for doc in page)
                finally:
                    await snapshot.close()

            return StreamingResponse(
                lines(), media_type="application/x-ndjson", background=BackgroundTask(snapshot.close)
            )

        return await guarded(request, work)

    return [
        Route("/consumers", listing, methods=["GET"]),
        Route("/consumers/{name}", one, methods=["GET", "PUT", "DELETE"]),
        Route("/deprovisioning", deprovisioning, methods=["GET"]),
        Route("/snapshot", snapshot, methods=["GET"]),
    ]
