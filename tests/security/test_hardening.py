"""Hardening: security headers and request ids on every response, no CORS, generic 500s,
constant-time token checks, the OpenAPI document, and `serve` refusing an open database."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from provisor.cli import main
from provisor.config import Settings
from provisor.http.app import create_app
from provisor.http.middleware import current_request_id
from provisor.logging_setup import JsonFormatter
from provisor.service import auth
from provisor.storage import tokens
from provisor.storage.dbcheck import insecure_database_reason
from tests.scim_client import USER_URN, Scim, assert_error, mint_token

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


def check_headers(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (name, dict(headers))
    assert headers.get("x-request-id")
    assert not any(k.lower().startswith("access-control-") for k in headers)


def test_every_response_has_security_headers_and_a_request_id(scim: Scim) -> None:
    user = scim.create_user("headers")
    responses = [
        scim.get("/Users"),
        scim.get(f"/Users/{user['id']}"),
        scim.get(f"/Users/{user['id']}", headers={"If-None-Match": user["meta"]["version"]}),  # 304
        scim.delete(f"/Users/{user['id']}"),  # 204
        scim.get("/Users/missing"),  # 404
        scim.client.get("/scim/v2/Users"),  # 401
        scim.client.get("/healthz"),
        scim.client.get("/readyz"),
        scim.client.get("/nowhere"),
        scim.client.get("/admin/v1/events"),
        scim.client.get("/scim/v2/openapi.json"),
        scim.client.options(
            "/scim/v2/Users",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"},
        ),
    ]
    for response in responses:
        check_headers(response.headers)
    ids = {r.headers["x-request-id"] for r in responses}
    assert len(ids) == len(responses)


def test_request_id_is_echoed_when_safe_and_replaced_when_not(scim: Scim) -> None:
    assert (
        scim.get("/Users", headers={"X-Request-Id": "abc-123.def"}).headers["x-request-id"] == "abc-123.def"
    )
    hostile = scim.get("/Users", headers={"X-Request-Id": "x" * 300})
    assert hostile.headers["x-request-id"] != "x" * 300
    injected = scim.get("/Users", headers={"X-Request-Id": "a b;<script>"})
    assert injected.headers["x-request-id"] != "a b;<script>"


@pytest.fixture
def broken_app(sqlite_url: str) -> Iterator[tuple[TestClient, str]]:
    app = create_app(Settings(database_url=sqlite_url, webhooks_enabled=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        provisor = app.state.provisor

        async def explode(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("SELECT secret_hash FROM tokens WHERE password = 'hunter2'")

        provisor.services["User"].list = explode
        yield client, mint_token(sqlite_url, "broken-tenant")


def test_unexpected_errors_are_generic_500_with_request_id(
    broken_app: tuple[TestClient, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, token = broken_app
    with caplog.at_level(logging.ERROR):
        response = client.get(
            "/scim/v2/Users", headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-500"}
        )
    body = assert_error(response, 500)
    assert body["detail"] == "internal server error (request id req-500)"
    assert (
        "SELECT" not in response.text and "Traceback" not in response.text and "hunter2" not in response.text
    )
    check_headers(response.headers)
    assert any("req-500" in r.getMessage() for r in caplog.records)  # the operator can find it


def test_token_comparison_is_constant_time() -> None:
    # Lookup is by SHA-256 digest (an index lookup leaks nothing about the secret), then both the
    # static token and stored hashes are compared with hmac.compare_digest.
    assert "compare_digest" in inspect.getsource(tokens.find_active)
    assert "compare_digest" in inspect.getsource(auth.TokenAuthenticator)


def test_openapi_document_needs_no_auth_and_describes_the_api(scim: Scim) -> None:
    response = scim.client.get("/scim/v2/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/Users", "/Users/{id}", "/Groups", "/Groups/{id}", "/Users/.search", "/Bulk", "/.search"):
        assert path in doc["paths"], path
    assert set(doc["paths"]["/Users/{id}"]) >= {"get", "put", "patch", "delete"}
    users = doc["components"]["schemas"]["User"]["properties"]
    assert users["userName"]["type"] == "string"
    assert users["emails"]["type"] == "array"
    assert users["password"]["writeOnly"] is True
    assert "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" in users
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # the document is public; the API is not
    assert_error(scim.client.get("/scim/v2/Users"), 401)


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("postgresql://app@db.internal:5432/provisor", True),
        ("postgresql://app@10.0.0.5/provisor", True),
        ("postgresql://app:secret@db.internal/provisor", False),
        ("postgresql://app@localhost/provisor", False),
        ("postgresql://app@127.0.0.1:5432/provisor", False),
        ("postgresql://app@[::1]/provisor", False),
        ("postgresql:///provisor?host=/var/run/postgresql", False),
        ("postgresql://app@db.internal/provisor?sslcert=/c.pem", False),
        ("sqlite:///./provisor.db", False),
    ],
)
def test_insecure_database_detection(url: str, refused: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    assert (insecure_database_reason(url) is not None) is refused


def test_serve_refuses_an_open_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PROVISOR_ALLOW_INSECURE_DATABASE", raising=False)
    result = CliRunner().invoke(main, ["serve", "--database-url", "postgresql://app@203.0.113.9/db"])
    assert result.exit_code != 0
    assert "refusing to serve" in result.output
    assert "--allow-insecure-database" in result.output


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("provisor", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    token = current_request_id.set("rid-1")
    try:
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        current_request_id.reset(token)
    assert line["message"] == "hello world"
    assert line["request_id"] == "rid-1"
    assert line["level"] == "warning" and line["time"].endswith("Z")


def test_no_cors_preflight_support(scim: Scim) -> None:
    response = scim.client.options(
        "/scim/v2/Users", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in response.headers
    created = scim.post(
        "/Users", {"schemas": [USER_URN], "userName": "cors"}, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in created.headers


def test_docs_mention_every_new_variable() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    security = (root / "docs" / "security.md").read_text()
    for name in (
        "PROVISOR_MAX_FILTER_LENGTH",
        "PROVISOR_MAX_FILTER_DEPTH",
        "PROVISOR_MAX_PATCH_OPERATIONS",
        "PROVISOR_MAX_JSON_DEPTH",
        "PROVISOR_REQUEST_TIMEOUT",
        "PROVISOR_REQUEST_LOG",
        "PROVISOR_REQUEST_LOG_RETENTION_DAYS",
        "PROVISOR_LOG_FORMAT",
        "PROVISOR_ALLOW_INSECURE_DATABASE",
    ):
        assert name in readme, name
        assert name in security, name


def test_a_handler_slower_than_the_timeout_is_a_503(sqlite_url: str) -> None:
    import asyncio
    import time

    # 1 s, not less: the follow-up requests below must fit in it on a loaded CI machine (at 0.3 s a
    # plain GET /Groups there was once answered 503 itself).
    timeout = 1.0
    app = create_app(
        Settings(database_url=sqlite_url, webhooks_enabled=False, request_timeout_seconds=timeout)
    )
    with TestClient(app) as client:

        async def slow(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(5)

        app.state.provisor.services["User"].list = slow
        token = mint_token(sqlite_url, "slow-tenant")
        headers = {"Authorization": f"Bearer {token}"}
        started = time.monotonic()
        response = client.get("/scim/v2/Users", headers=headers)
        assert time.monotonic() - started < 4  # the handler's 5 s sleep was cut short
        body = assert_error(response, 503)
        assert "timed out" in body["detail"]
        check_headers(response.headers)
        # the app still serves the next request
        assert client.get("/scim/v2/Groups", headers=headers).status_code == 200
        # the admin change feed's long-poll gets its wait on top of the timeout
        admin = mint_token(sqlite_url, None, kind="admin")
        started = time.monotonic()
        polled = client.get(
            "/admin/v1/events?wait=1.5&after=999999999", headers={"Authorization": f"Bearer {admin}"}
        )
        assert polled.status_code == 200
        assert time.monotonic() - started >= 1.5 > timeout
