"""`/healthz` (the process answers) and `/readyz` (it can serve: database reachable, schema current).

A load balancer should route by `/readyz` and an orchestrator restart by `/healthz`: a database
outage makes every worker unready but restarting them would not help. Both are unauthenticated
and answer JSON; neither is logged in the request log (http/middleware.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from provisor.service.database import code_revisions, current_revisions

if TYPE_CHECKING:
    from provisor.container import Provisor

log = logging.getLogger("provisor")

#: A readiness probe must answer even when the database does not.
CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def readyz_endpoint(provisor: Provisor) -> Callable[[Request], Awaitable[Response]]:
    heads, known = code_revisions()  # read once: the code does not change while it runs
    # One check in flight at a time: while the database hangs, probes wait on the same check
    # instead of piling up connection attempts (a cancelled connect can itself take a while).
    checking: list[asyncio.Task[frozenset[str]]] = []

    async def readyz(request: Request) -> Response:
        if not checking or checking[0].done():
            checking[:] = [asyncio.create_task(current_revisions(provisor.engine))]
        task = checking[0]
        done, _ = await asyncio.wait({task}, timeout=CHECK_TIMEOUT_SECONDS)
        if not done:
            log.warning("readiness check failed: database unreachable (timed out)")
            return _unready("database unreachable (timed out)")
        try:
            current = task.result()
        except Exception as exc:  # refused, reset, authentication failed...
            log.warning("readiness check failed: database unreachable (%s)", exc)
            return _unready(f"database unreachable ({type(exc).__name__})")
        if current == heads:
            return JSONResponse({"status": "ready", "schema": sorted(current)})
        if current <= known:  # an older revision this code knows: `provisor migrate` is due
            return _unready(
                f"database schema at {', '.join(sorted(current)) or 'none'}, this code needs "
                f"{', '.join(sorted(heads))}; run `provisor migrate`",
                schema=sorted(current),
            )
        # A revision this code does not know: newer code migrated it (a rolling upgrade). Its
        # migrations keep what older code needs working, so this worker can still serve.
        return JSONResponse({"status": "ready", "schema": sorted(current), "note": "schema newer than code"})

    return readyz


def _unready(reason: str, **extra: object) -> Response:
    return JSONResponse({"status": "unavailable", "reason": reason, **extra}, status_code=503)
