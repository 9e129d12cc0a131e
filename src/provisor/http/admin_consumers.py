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
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from sqlalchemy.exc import DBAPIError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from provisor.errors import ScimError, invalid_value, not_found
from provisor.service.context import RequestContext
from provisor.service.deprovisioning import DEFAULT_WINDOW_SECONDS, report
from provisor.service.snapshot import snapshot_lines
from provisor.storage import consumers as store
from provisor.storage.event_log import EventFilter, latest_seq
from provisor.storage.snapshot import snapshot_transaction
from provisor.storage.tenants import get_settings, tenant_exists
from provisor.storage.transactions import read_transaction, write_transaction

if TYPE_CHECKING:
    from provisor.http.app import Provisor

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


async def _tenant(request: Request, conn: Any) -> str:
    tenant = request.query_params.get("tenant")
    if not tenant:
        raise invalid_value("tenant is required")
    if not await tenant_exists(conn, tenant):
        raise not_found(f"tenant {tenant} not found")
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
    async with read_transaction(provisor.engine) as conn:
        consumer = await store.get_consumer(conn, name)
    if consumer is None:
        raise not_found(f"consumer {name} not found")
    if consumer.tenant is not None:
        if where.tenant not in (None, consumer.tenant):
            raise invalid_value(f"consumer {name} is scoped to tenant {consumer.tenant}")
        where = EventFilter(consumer.tenant, where.resource_type, where.ops)
    return consumer.seq, where


def consumer_routes(provisor: Provisor, guarded: Guard) -> list[BaseRoute]:
    engine = provisor.engine

    async def listing(request: Request) -> Response:
        async def work() -> Response:
            async with read_transaction(engine) as conn:
                found = await store.list_consumers(conn)
                head = await latest_seq(conn)
            return _json({"consumers": [{**c.to_json(), "lag": head - c.seq} for c in found], "head": head})

        return await guarded(request, work)

    async def one(request: Request) -> Response:
        async def work() -> Response:
            name = _name(request)
            if request.method == "PUT":
                seq, tenant = await _commit_body(request)
                try:
                    async with write_transaction(engine) as conn:
                        consumer = await store.commit_position(
                            conn, name, seq, tenant=tenant, force=_flag(request, "force")
                        )
                        head = await latest_seq(conn)
                except store.PositionError as error:
                    raise ScimError(error.status, error.detail) from None
            elif request.method == "DELETE":
                async with write_transaction(engine) as conn:
                    if not await store.delete_consumer(conn, name):
                        raise not_found(f"consumer {name} not found")
                return Response(status_code=204)
            else:
                async with read_transaction(engine) as conn:
                    found = await store.get_consumer(conn, name)
                    head = await latest_seq(conn)
                if found is None:
                    raise not_found(f"consumer {name} not found")
                consumer = found
            return _json({**consumer.to_json(), "lag": head - consumer.seq, "head": head})

        return await guarded(request, work)

    async def deprovisioning(request: Request) -> Response:
        async def work() -> Response:
            unacknowledged = _flag(request, "unacknowledged")
            window = _int(request, "window", DEFAULT_WINDOW_SECONDS, 1, 10 * 365 * 86400)
            limit = _int(request, "limit", 1000, 1, MAX_LIMIT)
            async with read_transaction(engine) as conn:
                tenant = await _tenant(request, conn)
                settings = await get_settings(conn, tenant)
                body = await report(
                    conn, tenant, settings, unacknowledged=unacknowledged, window_seconds=window, limit=limit
                )
            return _json(body)

        return await guarded(request, work)

    async def snapshot(request: Request) -> Response:
        async def work() -> Response:
            stack = AsyncExitStack()
            try:
                conn, seq = await stack.enter_async_context(snapshot_transaction(engine))
                tenant = await _tenant(request, conn)
                settings = await get_settings(conn, tenant)
            except DBAPIError as error:
                await stack.aclose()
                if "lock timeout" not in str(error).lower():
                    raise
                raise ScimError(503, "writers held the event log too long; retry the snapshot") from None
            except BaseException:
                await stack.aclose()
                raise
            ctx = RequestContext(tenant, None, _scim_base(provisor, request), settings)

            async def lines() -> AsyncIterator[bytes]:
                try:
                    yield orjson.dumps({"seq": seq}) + b"\n"
                    async for page in snapshot_lines(conn, provisor.services, ctx):
                        yield b"".join(orjson.dumps(doc) + b"\n" for doc in page)
                finally:
                    # A client that disconnects cancels this generator: the transaction must still
                    # end and its connection go back to the pool.
                    with anyio.CancelScope(shield=True):
                        await stack.aclose()

            return StreamingResponse(
                lines(), media_type="application/x-ndjson", background=BackgroundTask(stack.aclose)
            )

        return await guarded(request, work)

    return [
        Route("/consumers", listing, methods=["GET"]),
        Route("/consumers/{name}", one, methods=["GET", "PUT", "DELETE"]),
        Route("/deprovisioning", deprovisioning, methods=["GET"]),
        Route("/snapshot", snapshot, methods=["GET"]),
    ]
