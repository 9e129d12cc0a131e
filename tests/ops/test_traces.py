"""Traces (telemetry/tracing.py): spans for the request, the service call and the statements, handed
to an in-memory exporter; over OTLP/HTTP to a real receiver when configured; and nothing at all
(not even an import of OpenTelemetry) when not configured."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from tests.scim_client import mint_token


def test_spans_for_request_service_and_statements(database_url: str, tenant_id: str) -> None:
    exporter = InMemorySpanExporter()
    settings = Settings(database_url=database_url, webhooks_enabled=False)
    headers = {"Authorization": f"Bearer {mint_token(database_url, tenant_id)}"}
    with TestClient(create_app(settings, span_exporter=exporter)) as client:
        created = client.post("/scim/v2/Users", headers=headers, json={"userName": "traced"})
        assert created.status_code == 201
        exporter.clear()
        listed = client.get("/scim/v2/Users", headers=headers, params={"filter": 'userName sw "tra"'})
        assert listed.status_code == 200
        user_id = created.json()["id"]
        assert client.get(f"/scim/v2/Users/{user_id}", headers=headers).status_code == 200
    spans = exporter.get_finished_spans()
    requests = [s for s in spans if s.kind == SpanKind.SERVER]
    assert [s.name for s in requests] == ["GET /scim/v2/Users", "GET /scim/v2/Users/{id}"]
    assert [s.attributes["http.response.status_code"] for s in requests] == [200, 200]
    assert user_id not in "".join(s.name for s in spans)
    services = [s for s in spans if s.name == "service GET"]
    assert len(services) == 2
    for request, service in zip(requests, services, strict=True):
        assert service.parent is not None and service.parent.span_id == request.context.span_id
        assert service.context.trace_id == request.context.trace_id
    # The list's filter runs through SQLAlchemy: its statement is a child of the list's service span.
    statements = [s for s in spans if s.name.startswith("db ")]
    list_trace = requests[0].context.trace_id
    mine = [s for s in statements if s.context.trace_id == list_trace]
    assert mine, [s.name for s in statements]
    assert all(s.parent is not None for s in mine)
    assert any("SELECT" in str(s.attributes["db.statement"]).upper() for s in mine)
    assert {s.attributes["db.system"] for s in mine} == {database_url.split(":")[0].split("+")[0]}


def test_nothing_is_imported_or_traced_without_configuration(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROVISOR_OTLP"))}
    program = (
        "import sys\n"
        "from provisor.config import Settings\n"
        "from provisor.http.app import create_app\n"
        f"app = create_app(Settings(database_url={sqlite_url!r}, webhooks_enabled=False))\n"
        "assert app.state.provisor.tracer is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    command = [sys.executable, "-c", program]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_exported_over_otlp_http_when_configured(sqlite_url: str, tenant_id: str, receiver: str) -> None:
    settings = Settings(database_url=sqlite_url, webhooks_enabled=False, otlp_endpoint=receiver)
    headers = {"Authorization": f"Bearer {mint_token(sqlite_url, tenant_id)}"}
    with TestClient(create_app(settings)) as client:
        assert client.get("/scim/v2/Users", headers=headers).status_code == 200
    # Leaving the app shut the provider down, which sent the batch.
    assert _Receiver.received, "no spans arrived"
    path, content_type, body = _Receiver.received[0]
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    assert b"/scim/v2/Users" in body and b"provisor" in body
