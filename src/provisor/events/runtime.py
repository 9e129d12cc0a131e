"""Starts and stops the event consumers that run inside a serving process (the role job worker,
which produces events, is service/role_jobs.py, started beside them by provisor/container.py)."""

from __future__ import annotations

from typing import Any

from provisor.config import Settings
from provisor.events.hooks import HookRunner
from provisor.events.webhooks import WebhookWorker, WorkerConfig
from provisor.storage.handles import AsyncEngine


class EventRuntime:
    def __init__(self, engine: AsyncEngine, settings: Settings, hooks: Any = None) -> None:
        retention = settings.event_retention_days * 86400.0 if settings.event_retention_days > 0 else None
        config = WorkerConfig(
            max_attempts=settings.webhook_max_attempts,
            lease_seconds=settings.webhook_lease_seconds,
            poll_interval=settings.webhook_poll_seconds,
            retention_seconds=retention,
        )
        self.worker = WebhookWorker(engine, config) if settings.webhooks_enabled else None
        self.hooks = HookRunner(engine, hooks) if hooks is not None else None

    async def start(self) -> None:
        if self.hooks is not None:
            await self.hooks.start()
        if self.worker is not None:
            self.worker.start()

    def wake(self) -> None:
        """This process has committed events: let its consumers look now (events/wakeup.py)."""
        if self.worker is not None:
            self.worker.wake()
        if self.hooks is not None:
            self.hooks.wake()

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.hooks is not None:
            await self.hooks.stop()
