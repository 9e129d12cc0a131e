"""Shared helpers for the security tests: a second tenant, admin calls, body checks."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import orjson

from tests.scim_client import ERROR_URN, Scim, mint_token

#: Things that must never appear in a response body: SQL, driver names, Python tracebacks.
LEAK = re.compile(
    r"Traceback|File \"|sqlalchemy|asyncpg|aiosqlite|sqlite3|psycopg|SELECT |INSERT |UPDATE |DELETE FROM"
    r"|\bWHERE\b|OperationalError|ProgrammingError|IntegrityError|syntax error at",
)


def other_tenant(scim: Scim) -> Scim:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    return Scim(scim.client, mint_token(scim.database_url, tenant), scim.database_url, tenant)


def admin_get(scim: Scim, path: str, **params: Any) -> httpx.Response:
    token = mint_token(scim.database_url, None, kind="admin", name="admin-test")
    response: httpx.Response = scim.client.get(
        f"/admin/v1{path}", params=params, headers={"Authorization": f"Bearer {token}"}
    )
    return response


def assert_clean(response: httpx.Response, *sent: str) -> None:
    """No 5xx, a SCIM content type, and for errors a SCIM error body that leaks nothing.

    `sent` are strings the client sent: an error may quote them back, which is not a leak.
    """
    assert response.status_code < 500, (response.status_code, response.text[:500])
    text = response.text
    for echoed in sent:
        text = text.replace(orjson.dumps(echoed).decode()[1:-1], "").replace(echoed, "")
    assert not LEAK.search(text), response.text[:500]
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/scim+json"), response.headers
        body = response.json()
        assert body["schemas"] == [ERROR_URN]
        assert body["status"] == str(response.status_code)
