"""OpenTelemetry traces: a span per request, per service call and per database statement.

Optional twice over: the packages come with `pip install provisor[otel]`, and nothing is traced
unless an endpoint is configured (`PROVISOR_OTLP_ENDPOINT`, or the SDK's own
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Otherwise this module
imports nothing from OpenTelemetry and the app holds no tracer: the per-request cost is one
`is None` test in the envelope. Spans go out in batches over OTLP/HTTP (protobuf).

The statement spans come from SQLAlchemy's engine events (storage/instrument.py calls
`StatementSpans`), so like the statement metrics they cover what runs through SQLAlchemy, not the
hot statements storage/direct.py sends to the driver.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("provisor")

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def configured_endpoint(setting: str | None) -> str | None:
    """The OTLP endpoint to export to, or None when tracing is off."""
    if setting:
        return setting
    return next((os.environ[name] for name in _ENDPOINT_VARIABLES if os.environ.get(name)), None)


def make_tracer(endpoint_setting: str | None, exporter: Any = None) -> Any:
    """A tracer exporting to the configured endpoint (or to `exporter`, synchronously: for tests),
    or None when tracing is off or OpenTelemetry is not installed."""
    endpoint = configured_endpoint(endpoint_setting)
    if exporter is None and endpoint is None:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("tracing is configured but OpenTelemetry is not installed: pip install 'provisor[otel]'")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": "provisor"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider.get_tracer("provisor")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if endpoint_setting and not endpoint_setting.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint_setting.rstrip("/") + "/v1/traces"  # a base URL, as the SDK's variable
    # With only the SDK's variables set, the exporter reads them itself (and adds the path).
    otlp = OTLPSpanExporter(endpoint=endpoint) if endpoint_setting else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(otlp))
    tracer = provider.get_tracer("provisor")
    tracer.provisor_shutdown = provider.shutdown  # type: ignore[attr-defined]  # Provisor.stop sends the rest
    return tracer


class RequestSpans:
    """The request span, opened and made current by the envelope (http/middleware.py)."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import context, trace

        self.tracer = tracer
        self._context = context
        self._trace = trace
        self._server = trace.SpanKind.SERVER

    def begin(self, method: str) -> tuple[Any, Any]:
        span = self.tracer.start_span(method, kind=self._server, attributes={"http.request.method": method})
        return span, self._context.attach(self._trace.set_span_in_context(span))

    def end(self, handle: tuple[Any, Any], route: str, status: int, request_id: str) -> None:
        span, token = handle
        self._context.detach(token)
        span.update_name(f"{span.name} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("provisor.request_id", request_id)
        if status >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()


class StatementSpans:
    """A span around each statement SQLAlchemy runs, as a child of the current span (an observer
    for storage/instrument.py)."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = tracer

    def started(self, statement: str, system: str) -> Any:
        name = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        return self._tracer.start_span(
            f"db {name}",
            kind=self._trace.SpanKind.CLIENT,
            attributes={"db.system": system, "db.statement": statement},
        )

    def ended(self, span: Any, statement: str) -> None:
        span.end()

    def failed(self, span: Any, error: BaseException) -> None:
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(error).__name__))
        span.end()
