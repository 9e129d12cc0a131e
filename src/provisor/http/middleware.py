"""The envelope around every HTTP request (pure ASGI, so streaming responses stay streaming).

- a request id: the client's `X-Request-Id` when it is a short token of safe characters, else a
  fresh one; returned in `X-Request-Id` on every response and attached to every log line;
- security headers on every response (no CORS headers: browsers are not clients of this API);
- a timeout until the response starts (503 SCIM error after it; a slow-drip body ends there);
- a last-resort generic 500 SCIM error with the request id (no stack trace, no SQL);
- the request log (service/request_log.py), recorded after the response has been sent;
- the request metrics (telemetry/metrics.py): one counter and one histogram update per response.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provisor.budget import Budget, Unavailable, current_budget
from provisor.clock import now
from provisor.errors import ScimError, invalid_value
from provisor.http.responses import error_response
from provisor.service.faults import database_fault
from provisor.service.request_log import Exchange, RequestLogWriter

if TYPE_CHECKING:
    from provisor.config import Settings
    from provisor.http.metrics import RouteTemplates
    from provisor.telemetry.metrics import RequestMetrics
    from provisor.telemetry.tracing import RequestSpans

log = logging.getLogger("provisor.http")

#: The current request's id, for log formatters (provisor.logging_setup).
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "provisor_request_id", default=None
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
)
#: An HTML page of this server (the setup page) sets its own Content-Security-Policy, which is kept.
_CSP = b"content-security-policy"
_WITHOUT_CSP = tuple(h for h in SECURITY_HEADERS if h[0] != _CSP)
_REPLACED = frozenset({name for name, _ in _WITHOUT_CSP} | {b"x-request-id"})
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Paths that are not logged (probes would drown everything else).
UNLOGGED_PATHS = frozenset({"/healthz", "/readyz"})
#: Nor is the setup page: its URL carries the link's secret, and its script polls every 2 s.
UNLOGGED_PREFIX = "/setup/"
#: At most this much of each body is kept in memory for the "full" request log.
CAPTURE_BYTES = 1_048_576
#: Long-poll endpoints get their own longest wait on top of the timeout (admin.MAX_WAIT_SECONDS).
LONG_POLL_PATHS = {"/admin/v1/events": 30.0}


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = str(value.decode("latin-1")).strip()
            if _SAFE_ID.match(candidate):
                return candidate
            break
    return fresh_request_id()


def fresh_request_id() -> str:
    """32 random hex digits (a fifth of what `uuid.uuid4().hex` costs; nothing needs it to be a UUID)."""
    return os.urandom(16).hex()


def request_id_of(scope: Scope) -> str:
    """The id the envelope assigned to this request (a fresh one outside the envelope)."""
    state = scope.get("state") or {}
    found = state.get("request_id") if isinstance(state, dict) else None
    return str(found) if found else fresh_request_id()


class _Deadline:
    """Ends the request if its response has not started `limit` seconds after it began.

    One timer per request, disarmed when the response starts; `asyncio.timeout` does the same as an
    async context manager at about four times the cost, on every request. When it fires the
    request's `Budget` decides: a request with no commit in flight is cancelled (it has written
    nothing); one with a commit in flight has that commit aborted in the database and waits for
    the outcome (provisor/budget.py).
    """

    __slots__ = ("_cancelling", "_handle", "_task", "budget")

    def __init__(self, limit: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._cancelling = task.cancelling()
        self.budget = Budget(limit, task.cancel)
        self._handle: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(limit, self._expire)

    @property
    def expired(self) -> bool:
        return self.budget.expired

    def _expire(self) -> None:
        self._handle = None
        self.budget.expire()

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def caused_cancellation(self) -> bool:
        """After a CancelledError: whether it was this deadline's (not a shutdown's or a caller's)."""
        return self.expired and self._task.uncancel() <= self._cancelling


def internal_error(request_id: str) -> ScimError:
    return ScimError(500, f"internal server error (request id {request_id})")


class _Exchange:
    """Mutable per-request capture state."""

    def __init__(self, scope: Scope, writer: RequestLogWriter | None, default_mode: str) -> None:
        self.scope = scope
        path = scope["path"]
        self.logged = (
            writer is not None and path not in UNLOGGED_PATHS and not path.startswith(UNLOGGED_PREFIX)
        )
        self.default_mode = default_mode
        self.status = 0
        self.started = False
        self.request_body = bytearray()
        self.response_body = bytearray()

    def principal(self) -> Any:
        state = self.scope.get("state")
        return state.get("principal") if isinstance(state, dict) else None

    def unknown_attributes(self) -> tuple[str, ...]:
        """The unknown attributes the SCIM services ignored in this request (http/scim.py)."""
        state = self.scope.get("state")
        names = state.get("unknown_attributes") if isinstance(state, dict) else None
        return tuple(dict.fromkeys(names)) if names else ()

    def mode(self) -> str:
        principal = self.principal()
        if principal is None:
            # Unauthenticated requests: metadata at most; their bodies are anyone's bytes.
            return "off" if self.default_mode == "off" else "metadata"
        return str(principal.tenant_settings.get("request_log", self.default_mode))

    def capture(self, target: bytearray, chunk: bytes) -> None:
        if self.logged and chunk and len(target) < CAPTURE_BYTES and self.keeps(target):
            target.extend(chunk[: CAPTURE_BYTES - len(target)])

    def keeps(self, target: bytearray) -> bool:
        """Bodies are kept in "full" mode; in "metadata" mode an error response's body is kept
        too (it is the server's own SCIM error: status, scimType, detail), so the setup page and
        `log tail` can name what failed."""
        mode = self.mode()
        if mode == "full":
            return True
        return mode == "metadata" and target is self.response_body and self.status >= 400


class EnvelopeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        writer: RequestLogWriter | None,
        templates: RouteTemplates | None = None,
        metrics: RequestMetrics | None = None,
        spans: RequestSpans | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.writer = writer
        #: Metrics and spans both name the route; with neither, no template is computed.
        self.templates = templates if metrics is not None or spans is not None else None
        self.metrics = metrics
        self.spans = spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = current_request_id.set(request_id)
        exchange = _Exchange(scope, self.writer, self.settings.request_log_mode)
        root = scope.get("root_path", "")
        at, began = now(), time.perf_counter()
        limit = self.settings.request_timeout_seconds
        if limit > 0:
            limit += LONG_POLL_PATHS.get(scope["path"], 0.0)
        deadline = _Deadline(limit) if limit > 0 else None
        budget_token = current_budget.set(deadline.budget) if deadline is not None else None
        id_header = request_id.encode("latin-1")
        span = self.spans.begin(scope["method"]) if self.spans is not None else None

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.capture(exchange.request_body, message.get("body", b""))
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                if deadline is not None:  # the limit is on starting the response, not on streaming it
                    deadline.disarm()
                exchange.started = True
                exchange.status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _REPLACED]
                own_csp = any(k.lower() == _CSP for k, _ in headers)
                headers.extend(_WITHOUT_CSP if own_csp else SECURITY_HEADERS)
                headers.append((b"x-request-id", id_header))
                message["headers"] = headers
            elif message["type"] == "http.response.body":
                exchange.capture(exchange.response_body, message.get("body", b""))
            await send(message)

        try:
            if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
                # PostgreSQL cannot store or compare NUL in text: refuse it before any layer sees it.
                await self._respond(invalid_value("NUL characters are not allowed in URLs"), send_wrapper)
                return
            try:
                await self.app(scope, receive_wrapper, send_wrapper)
            except asyncio.CancelledError:
                if deadline is None or not deadline.caused_cancellation():
                    raise
                if not exchange.started:
                    log.warning("request %s %s timed out after %gs", scope["method"], scope["path"], limit)
                    await self._respond(
                        Unavailable(f"request timed out after {limit:g} s; nothing was written"), send_wrapper
                    )
        except Exception as exc:
            fault = database_fault(exc)
            if fault is not None:
                log.warning("%s %s: %s", scope["method"], scope["path"], fault.detail)
                if not exchange.started:
                    await self._respond(fault, send_wrapper)
            else:
                await self._fail(exchange, internal_error(request_id), send_wrapper, "unhandled error")
        finally:
            if deadline is not None:
                deadline.disarm()
            if budget_token is not None:
                current_budget.reset(budget_token)
            current_request_id.reset(token)
            if self.templates is not None:
                route = self.templates.of(scope, root)
                if self.metrics is not None:
                    self.metrics.observe(
                        scope["method"], route, exchange.status or 500, time.perf_counter() - began
                    )
                if span is not None and self.spans is not None:
                    self.spans.end(span, route, exchange.status or 500, request_id)
            if exchange.logged and self.writer is not None:
                self._record(exchange, at, began, request_id)

    async def _fail(self, exchange: _Exchange, error: ScimError, send: Send, what: str) -> None:
        log.exception("%s in %s %s", what, exchange.scope["method"], exchange.scope["path"])
        if not exchange.started:
            await self._respond(error, send)

    async def _respond(self, error: ScimError, send: Send) -> None:
        response = error_response(error, getattr(error, "headers", None))

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response({"type": "http"}, no_body, send)

    def _record(self, exchange: _Exchange, at: str, began: float, request_id: str) -> None:
        assert self.writer is not None
        scope = exchange.scope
        principal = exchange.principal()
        self.writer.record(
            Exchange(
                at=at,
                request_id=request_id,
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                status=exchange.status or 500,
                duration_ms=(time.perf_counter() - began) * 1000.0,
                tenant_id=getattr(principal, "tenant_id", None),
                token_name=getattr(principal, "token_name", None),
                mode=exchange.mode(),
                request_body=bytes(exchange.request_body),
                response_body=bytes(exchange.response_body),
                unknown_attributes=exchange.unknown_attributes(),
            )
        )
