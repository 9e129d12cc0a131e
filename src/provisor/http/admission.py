"""Admission control: a worker serves at most `PROVISOR_MAX_INFLIGHT` SCIM/admin requests at once.

An IdP's clients are closed loops: each connection sends its next request when the last one is
answered. A saturated worker that accepts every request makes each wait behind all the others, so
latency grows with the number of connections (docs/operations.md, "Overload": at 200 connections
the p99 was many times the 16-connection p99). Past the cap a request is answered with a SCIM 503
and `Retry-After: 1` before anything reads its body, authenticates or touches the database, so it
has written nothing; Okta and Entra ID retry such answers later. The requests admitted keep the
latency of a worker at its cap.

A request over the cap is refused at once, never queued: measured (docs/operations.md,
"Overload"), a wait of 20 ms for a slot put the SQLite p99 at 200 connections at 3.2-7.0x the
16-connection p99 instead of 2.0x for clients that honour `Retry-After`, since waiters add their
wait to every answer; only clients that resend at once gained from it. Probes, the metrics and
the event feed's long polls (which hold a request open on purpose, for up to 30 s) are never
counted nor refused.

This middleware is the outermost layer: a refusal costs no request id lookup, no route template
and no request-log row (a log row per refusal would add database writes exactly when the server
has no capacity for them). Refusals are counted in `provisor_http_shed_requests_total` and summed
in one warning per `LOG_EVERY_SECONDS`, never one line (nor a traceback) each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from provisor.budget import Unavailable
from provisor.http.middleware import SECURITY_HEADERS, request_id_from
from provisor.http.responses import error_response

if TYPE_CHECKING:
    from provisor.telemetry.metrics import RequestMetrics

log = logging.getLogger("provisor.http")

#: Only these path prefixes are admitted under the cap (relative to the app's root path).
CAPPED_PREFIXES = ("/scim/v2/", "/admin/v1/")
#: The event feed with `wait` long-polls on purpose: it is neither counted nor refused.
LONG_POLL_PATH = "/admin/v1/events"
#: At most one warning per this many seconds while requests are refused.
LOG_EVERY_SECONDS = 10.0


def _refusal() -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The 503's body and headers, rendered once (every refusal sends the same bytes)."""
    error = Unavailable("server busy: too many requests in progress; nothing was written, retry later")
    response = error_response(error, error.headers)
    headers = [(k, v) for k, v in response.raw_headers]
    headers.extend(SECURITY_HEADERS)
    return bytes(response.body), headers


class AdmissionMiddleware:
    """Counts the capped requests in flight in this worker; refuses those over `limit`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics
        self.in_flight = 0
        self._body, self._headers = _refusal()
        self._refused_since_log = 0
        self._logged_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limit <= 0 or scope["type"] != "http" or not self._capped(scope):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._refuse(scope, send)
            return
        self.in_flight += 1
        try:
            # Yield once, so that every request that arrived in this turn of the event loop is
            # counted before any of them runs: a SQLite read by key runs on the loop's own thread
            # without awaiting anything, so without this requests never overlap in the app and the
            # queue stays invisible, in the sockets (measured: no refusal at 200 connections).
            await asyncio.sleep(0)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    @staticmethod
    def _capped(scope: Scope) -> bool:
        root = scope.get("root_path", "")
        path: str = scope["path"]
        if root and path.startswith(root):
            path = path[len(root) :]
        if not path.startswith(CAPPED_PREFIXES):
            return False
        return not (path == LONG_POLL_PATH and b"wait=" in scope.get("query_string", b""))

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if self.metrics is not None:
            self.metrics.shed()
        self._refused_since_log += 1
        clock = time.monotonic()
        if clock - self._logged_at >= LOG_EVERY_SECONDS:
            log.warning(
                "overloaded: %d request(s) answered 503 since the last report (at most %d in flight "
                "per worker, PROVISOR_MAX_INFLIGHT)",
                self._refused_since_log,
                self.limit,
            )
            self._refused_since_log, self._logged_at = 0, clock
        headers = [*self._headers, (b"x-request-id", request_id_from(scope).encode("latin-1"))]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})
