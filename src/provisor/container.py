"""The application's dependencies, wired once: settings, schema registry, database, services,
authentication, the request log, the event workers, metrics and tracing.

It sits above every layer (it builds the SCIM API of http/ and the services of service/), and the
HTTP modules receive it, so they import it only for its type; it imports none of them that do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from provisor.config import Settings
from provisor.events.hooks import PasswordHook
from provisor.events.runtime import EventRuntime
from provisor.http.auth import Authenticator
from provisor.http.metrics import OFF, MetricsListener, parse_address, scrape
from provisor.http.scim import ScimApi
from provisor.schema.registry import Registry
from provisor.service.auth import AuthListener
from provisor.service.database import (
    Database,
    close,
    observe_statements,
    open_database,
    prepare_when_reachable,
)
from provisor.service.groups import GroupService
from provisor.service.ratelimit import RateLimiter
from provisor.service.request_log import RequestLogWriter
from provisor.service.resources import ResourceService
from provisor.service.role_jobs import RoleJobWorker
from provisor.service.users import UserService
from provisor.storage.statistics import StatisticsKeeper
from provisor.telemetry.metrics import RequestMetrics, StatementTimer
from provisor.telemetry.tracing import StatementSpans, make_tracer

log = logging.getLogger("provisor")

#: How often each worker hands its request counts to the shared metrics (telemetry/metrics.py).
METRICS_FLUSH_SECONDS = 1.0


class Provisor:
    """Holds the database, the registry, the services and the workers for the life of the app.

    The one place where the layers are wired together; every request handler reaches what it
    needs through it. It is built before the ASGI app and started by the app's lifespan.
    """

    def __init__(
        self, settings: Settings, registry: Registry, hooks: Any = None, span_exporter: Any = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.engine: Database = open_database(settings.database_url, pool_size=settings.database_pool_size)
        #: None unless tracing is configured (telemetry/tracing.py); then OpenTelemetry is imported.
        self.tracer = make_tracer(settings.otlp_endpoint, span_exporter)
        if self.tracer is not None:
            observe_statements(self.engine, StatementSpans(self.tracer), "trace")
        services: dict[str, ResourceService] = {
            "User": UserService(self.engine, registry, registry.resource_type("User"), settings),
            "Group": GroupService(self.engine, registry, registry.resource_type("Group"), settings),
        }
        self.services = services
        password_hook = PasswordHook.of(hooks) if hooks is not None else None
        if password_hook is not None:
            services["User"].write_only_sink = password_hook
        self.request_metrics = RequestMetrics() if settings.metrics_address != OFF else None
        self.auth = Authenticator(
            self.engine, settings.static_token, RateLimiter(self.engine), metrics=self.request_metrics
        )
        self.auth_listener = AuthListener(self.engine, self.auth.cache) if settings.token_cache else None
        self.request_log = RequestLogWriter(self.engine, settings.request_log_retention_days)
        self.api = ScimApi(settings, registry, services, self.auth)
        self.events = EventRuntime(self.engine, settings, hooks)
        self.statistics = StatisticsKeeper(self.engine, settings.auto_analyze)
        self.role_jobs = RoleJobWorker(self.engine, settings.role_job_batch, 1.0, self.events.wake)
        if self.request_metrics is not None:
            observe_statements(self.engine, StatementTimer(), "time")
        address = parse_address(settings.metrics_address)
        self.metrics_listener = MetricsListener(self.scrape, *address) if address else None
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await prepare_when_reachable(self.engine, migrate=self.settings.migrate_on_start)
        if self.auth_listener is not None:
            await self.auth_listener.start()
        await self.events.start()
        self.role_jobs.start()
        self.request_log.start()
        self.statistics.start()
        if self.request_metrics is not None:
            self._flusher = asyncio.create_task(self.request_metrics.flush_every(METRICS_FLUSH_SECONDS))
        if self.metrics_listener is not None:
            await self.metrics_listener.start()

    async def stop(self) -> None:
        if self.metrics_listener is not None:
            await self.metrics_listener.stop()
        shutdown = getattr(self.tracer, "provisor_shutdown", None)
        if shutdown is not None:
            await asyncio.to_thread(shutdown)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self.request_metrics is not None:
            self.request_metrics.flush()
        if self.auth_listener is not None:
            await self.auth_listener.stop()
        await self.role_jobs.stop()
        await self.events.stop()
        await self.request_log.stop()
        await self.statistics.stop()
        await close(self.engine)

    async def scrape(self) -> bytes:
        """One metrics exposition (`GET /metrics`, on the main port or the metrics listener)."""
        return await scrape(self.request_metrics, self.engine)
