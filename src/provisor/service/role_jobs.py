"""The background worker that applies role mappings of large groups (service/roles.py).

Each step is one committed batch (events plus cursor advance), so a process that dies mid-job
leaves the job at its last committed batch and any worker (this one after a restart, or another
process) resumes it from there.

It lives in service/, not events/: it runs a service operation that writes resources and their
events (a producer of the outbox), while events/ holds the outbox's consumers. The container
starts it beside them and hands it their `wake`, so its committed batches are delivered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from provisor.service.roles import run_job_step
from provisor.storage import roles as role_store
from provisor.storage.faults import OutageLog
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import Roles
from provisor.storage.transactions import autocommit

#: Storage as the contract names it (storage/interfaces/).
_store: Roles = role_store

log = logging.getLogger("provisor.roles")


class RoleJobWorker:
    def __init__(
        self, engine: AsyncEngine, batch: int, poll_seconds: float, wake: Callable[[], None] | None = None
    ) -> None:
        self.engine = engine
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.wake = wake
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_pending(self) -> int:
        """Run every unfinished job to its end; the number of batches committed."""
        steps = 0
        async with autocommit(self.engine) as conn:  # one statement a second: no BEGIN/COMMIT
            pending = await _store.running_jobs(conn)
        for tenant_id, job_id in pending:
            while True:
                job = await run_job_step(self.engine, tenant_id, job_id, self.batch)
                if job is None:
                    break  # held by another worker
                steps += 1
                if self.wake is not None:
                    self.wake()
                if job.state != "running":
                    break
        return steps

    async def _run(self) -> None:
        outage = OutageLog(log, "role job worker")  # one line when the database goes, one when back
        while True:
            try:
                steps = await self.run_pending()
                outage.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage.failed(exc)
                steps = 0
            if not steps:
                await asyncio.sleep(self.poll_seconds)
