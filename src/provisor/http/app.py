"""The ASGI application: `/scim/v2` (SCIM API), `/healthz`, `/readyz`, `/metrics`, and error handling.

`create_app` is also the embedding entry point: a host application can mount the returned app.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from provisor.config import Settings
from provisor.container import Provisor
from provisor.errors import ScimError
from provisor.http.admin import admin_routes
from provisor.http.admission import AdmissionMiddleware
from provisor.http.console import console_app
from provisor.http.health import healthz, readyz_endpoint
from provisor.http.metrics import MAIN, RouteTemplates, metrics_endpoint
from provisor.http.middleware import EnvelopeMiddleware, internal_error, request_id_of
from provisor.http.openapi import openapi_endpoint
from provisor.http.responses import error_response
from provisor.http.setup_page import setup_routes
from provisor.schema.registry import Registry, default_registry
from provisor.service.errors import database_fault
from provisor.telemetry.tracing import RequestSpans

log = logging.getLogger("provisor")

SCIM_PREFIX = "/scim/v2"
OPENAPI_PATH = SCIM_PREFIX + "/openapi.json"

#: A serving worker's young-generation threshold for the cyclic GC (Python's default is 700): see
#: `create_app`'s `freeze_gc`.
SERVING_GC_THRESHOLD = 10_000


_READ_METHODS = frozenset({"GET", "HEAD"})


class ScimEndpoint:
    """ASGI app for everything under the SCIM prefix; turns every failure into a SCIM error."""

    def __init__(self, provisor: Provisor) -> None:
        self.provisor = provisor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        root = scope.get("root_path", "")
        path = scope["path"][len(root) :] if root and scope["path"].startswith(root) else scope["path"]
        tracer = self.provisor.tracer
        if tracer is None:
            response = await run_safely(request, lambda: self.provisor.api.handle(request, path))
        else:
            with tracer.start_as_current_span(f"service {request.method}"):
                response = await run_safely(request, lambda: self.provisor.api.handle(request, path))
        if request.method not in _READ_METHODS and response.status_code < 300:
            self.provisor.events.wake()  # a write succeeded: its events are committed
        await response(scope, receive, send)


class ScimRoute:
    """Sends requests under the SCIM prefix straight to the SCIM endpoint; the rest go on to
    Starlette's exception middleware and router. Those add nothing to the SCIM API, which has its
    own dispatcher and turns every failure into a SCIM error, and cost about a quarter of the
    application's time on a request that does no work. The scope is changed as `Mount` would.
    `routed` are the paths under the prefix that Starlette's router serves (the OpenAPI document,
    which needs no token)."""

    def __init__(
        self, app: ASGIApp, *, prefix: str, endpoint: ASGIApp, routed: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.under_prefix = prefix + "/"
        self.endpoint = endpoint
        self.routed = routed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            path = scope["path"]
            route = path[len(root) :] if root and path.startswith(root) else path
            if route.startswith(self.under_prefix) and route not in self.routed:
                scope["app_root_path"] = scope.get("app_root_path", root)
                scope["root_path"] = root + self.prefix
                await self.endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def run_safely(request: Request, call: Any) -> Response:
    try:
        response: Response = await call()
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
        log.exception(
            "unhandled error in %s %s (request id %s)", request.method, request.url.path, request_id
        )
        return error_response(internal_error(request_id))


def create_app(
    settings: Settings | None = None,
    *,
    registry: Registry | None = None,
    hooks: Any = None,
    freeze_gc: bool = False,
    span_exporter: Any = None,
) -> Starlette:
    """Build the Provisor ASGI app. Migrations run on start unless `settings.migrate_on_start` is off.

    `freeze_gc` is for processes that exist to serve this app (`provisor serve` workers): after
    start-up, everything loaded so far (modules, schemas, compiled statements) lives as long as the
    process, so it is moved out of the cyclic collector's scans, which otherwise walk it on every
    full collection (a pause that showed in the p99 under load). The young generation is then
    collected after 10,000 net allocations instead of 700: nearly everything a request allocates
    is freed by reference counting when it ends, but 16 requests in flight passed 700 live objects
    about once every nine requests, and each such collection scanned them for nothing (a PATCH's
    worker CPU fell by 6-8%, a PUT's by 2-3%; docs/performance.md).

    `span_exporter` (an OpenTelemetry `SpanExporter`) turns tracing on with spans handed to it as
    they end, whatever the settings say: for tests and embedding hosts with their own pipeline.
    """
    settings = settings or Settings.from_env()
    registry = registry or default_registry(settings.schema_extensions)
    provisor = Provisor(settings, registry, hooks, span_exporter)
    scim = ScimEndpoint(provisor)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await provisor.start()
        thresholds = gc.get_threshold()
        if freeze_gc:
            gc.collect()
            gc.freeze()
            gc.set_threshold(SERVING_GC_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            if freeze_gc:
                gc.set_threshold(*thresholds)
            await provisor.stop()

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return error_response(ScimError(status, str(getattr(exc, "detail", "")) or "error"))

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz_endpoint(provisor)),
        Route(OPENAPI_PATH, openapi_endpoint(registry, settings)),
        Mount(SCIM_PREFIX, app=scim),
        Mount("/admin/v1", routes=admin_routes(provisor)),
        Mount("/setup", routes=setup_routes(provisor)),
        Mount("/console", app=console_app(provisor)),
    ]
    if settings.metrics_address == MAIN:
        routes.append(Route("/metrics", metrics_endpoint(provisor.auth, provisor.scrape)))
    templates = RouteTemplates(SCIM_PREFIX, [rt.endpoint for rt in registry.resource_types.values()])
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(AdmissionMiddleware, limit=settings.max_inflight, metrics=provisor.request_metrics),
            Middleware(
                EnvelopeMiddleware,
                settings=settings,
                writer=provisor.request_log,
                templates=templates,
                metrics=provisor.request_metrics,
                spans=RequestSpans(provisor.tracer) if provisor.tracer is not None else None,
            ),
            Middleware(ScimRoute, prefix=SCIM_PREFIX, endpoint=scim, routed=frozenset({OPENAPI_PATH})),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.provisor = provisor
    return app
