"""The request log: modes off / metadata / full, redaction, request ids, the admin API, the CLI
and retention (both databases)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from click.testing import CliRunner

from provisor.cli import main
from provisor.service.request_log import Exchange, RequestLogWriter, redact
from provisor.storage.direct import reader
from provisor.storage.request_log import RequestFilter, append, read_requests
from provisor.storage.transactions import read_transaction
from tests.scim_client import PATCH_OP, USER_URN, Scim, run_db
from tests.security.helpers import admin_get


def rows_for(scim: Scim, **params: Any) -> list[dict[str, Any]]:
    response = admin_get(scim, "/requests", tenant=scim.tenant_id, **params)
    assert response.status_code == 200, response.text
    requests: list[dict[str, Any]] = response.json()["requests"]
    return requests


def test_metadata_mode_is_the_default(scim: Scim) -> None:
    created = scim.post("/Users", {"schemas": [USER_URN], "userName": "meta", "password": "hunter2"})
    scim.get("/Users", params={"filter": 'userName eq "meta"'}, headers={"X-Request-Id": "rid-meta-1"})
    scim.get("/Users/missing")
    rows = rows_for(scim)
    assert [r["method"] for r in rows] == ["POST", "GET", "GET"]
    post, listing, missing = rows
    assert post["status"] == 201 and post["path"] == "/scim/v2/Users"
    assert post["request_id"] == created.headers["x-request-id"]
    assert post["token_name"] == "test" and post["tenant_id"] == scim.tenant_id
    assert post["duration_ms"] >= 0
    assert post["request_body"] is None and post["response_body"] is None
    assert listing["request_id"] == "rid-meta-1" and "filter=" in listing["query"]
    assert missing["status"] == 404
    assert [r["status"] for r in rows_for(scim, errors="true")] == [404]
    assert "hunter2" not in orjson.dumps(rows).decode()


def test_full_mode_stores_bodies_with_secrets_redacted(scim: Scim) -> None:
    scim.settings(request_log="full")
    user = scim.create_user("full", password="hunter2", name={"givenName": "F"})
    scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "password", "value": "s3cret-patch"})
    scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "replace", "value": {"password": "s3cret-pathless", "displayName": "Full"}},
    )
    scim.patch(
        f"/Users/{user['id']}",
        {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "Replace", "path": "PASSWORD", "value": "s3cret-upper"}],
        },
    )
    scim.put(f"/Users/{user['id']}", {"schemas": [USER_URN], "userName": "full", "password": "s3cret-put"})
    scim.post(
        "/Users", content=b"not json password=s3cret-raw", headers={"Content-Type": "application/scim+json"}
    )
    rows = rows_for(scim)
    dumped = orjson.dumps(rows).decode()
    for secret in ("hunter2", "s3cret-patch", "s3cret-pathless", "s3cret-upper", "s3cret-put", "s3cret-raw"):
        assert secret not in dumped, secret
    assert scim.token not in dumped and "Bearer" not in dumped
    created = orjson.loads(rows[0]["request_body"])
    assert created["password"] == "[redacted]" and created["name"] == {"givenName": "F"}
    assert orjson.loads(rows[0]["response_body"])["userName"] == "full"
    assert orjson.loads(rows[1]["request_body"])["Operations"][0]["value"] == "[redacted]"
    assert "not JSON" in rows[-1]["request_body"]


def test_off_mode_records_nothing(scim: Scim) -> None:
    scim.settings(request_log="off")
    scim.create_user("quiet")
    scim.get("/Users")
    assert rows_for(scim) == []


def test_unauthenticated_requests_are_logged_without_tenant_or_body(scim: Scim) -> None:
    scim.client.post(
        "/scim/v2/Users",
        content=b'{"password": "x"}',
        headers={"Content-Type": "application/scim+json", "X-Request-Id": f"anon-{scim.tenant_id}"},
    )
    response = admin_get(scim, "/requests", errors="1", limit=1000)
    mine = [r for r in response.json()["requests"] if r["request_id"] == f"anon-{scim.tenant_id}"]
    assert len(mine) == 1
    assert mine[0]["status"] == 401 and mine[0]["tenant_id"] is None and mine[0]["request_body"] is None


def test_admin_api_needs_an_admin_token_and_validates(scim: Scim) -> None:
    assert scim.client.get("/admin/v1/requests").status_code == 401
    assert (
        scim.client.get("/admin/v1/requests", headers={"Authorization": f"Bearer {scim.token}"}).status_code
        == 401
    )
    assert admin_get(scim, "/requests", limit="x").status_code == 400
    assert admin_get(scim, "/requests", after="-1").status_code == 400
    scim.get("/Users")
    scim.get("/Users")
    first = admin_get(scim, "/requests", tenant=scim.tenant_id, limit=1).json()
    assert len(first["requests"]) == 1
    second = admin_get(scim, "/requests", tenant=scim.tenant_id, after=first["next"]).json()
    assert len(second["requests"]) == 1 and second["requests"][0]["id"] > first["next"]


def test_log_tail_cli(scim: Scim) -> None:
    scim.get("/Users/nope")
    scim.get("/Users")
    rows_for(scim)  # flushes the app's queue
    runner = CliRunner()
    result = runner.invoke(
        main, ["log", "tail", "--tenant", scim.tenant_id, "--json", "--database-url", scim.database_url]
    )
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.output.splitlines()]
    assert [line["status"] for line in lines] == [404, 200]
    errors = runner.invoke(
        main, ["log", "tail", "--tenant", scim.tenant_id, "--errors", "--database-url", scim.database_url]
    )
    assert errors.exit_code == 0
    assert len(errors.output.splitlines()) == 1 and " 404 " in errors.output


def test_redact_unit() -> None:
    assert redact({"a": [{"Password": "x"}, {"urn:x:password": "y"}], "b": 1}) == {
        "a": [{"Password": "[redacted]"}, {"urn:x:password": "[redacted]"}],
        "b": 1,
    }
    assert (
        redact({"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "value": "z"})[
            "value"
        ]
        == "[redacted]"
    )
    assert redact({"op": "add", "path": "displayName", "value": "keep"})["value"] == "keep"


def test_writer_batches_and_prunes(fresh_database_url: str, tenant_id: str) -> None:
    """A database of its own: pruning walks the log from its oldest row (storage/log_pruning.py),
    so the back-dated row must be the oldest, as a deployment's old rows are."""

    def exchange(at: str, status: int = 200) -> Exchange:
        return Exchange(
            at, "rid", "GET", "/scim/v2/Users", "", status, 1.0, tenant_id, "t", "metadata", b"", b""
        )

    async def work(engine: Any) -> list[dict[str, Any]]:
        await append(engine, [_row(tenant_id, "old", at="2000-01-01T00:00:00.000000Z")])
        writer = RequestLogWriter(engine, retention_days=7)
        writer.start()
        for _ in range(3):
            writer.record(exchange("2099-01-01T00:00:00.000000Z"))
        writer.record(Exchange("x", "r", "GET", "/", "", 200, 1.0, tenant_id, "t", "off", b"", b""))
        await asyncio.sleep(0.6)  # one flush interval and then some
        await writer.stop()
        async with read_transaction(engine) as conn:
            return await read_requests(conn, 0, 100, RequestFilter(tenant=tenant_id))

    rows = run_db(fresh_database_url, work)
    assert [r["request_id"] for r in rows] == ["rid", "rid", "rid"]  # old row pruned, "off" not stored


def _row(tenant_id: str, request_id: str, *, at: str = "2099-01-01T00:00:00.000000Z") -> dict[str, Any]:
    return {
        "at": at,
        "tenant_id": tenant_id,
        "request_id": request_id,
        "method": "GET",
        "path": "/",
        "query": None,
        "status": 200,
        "duration_ms": 1.0,
        "token_name": None,
        "request_body": None,
        "response_body": None,
        "unknown_attributes": None,
    }


def test_a_batch_on_sqlite_is_one_write_of_the_workers_queue(database_url: str, tenant_id: str) -> None:
    """On SQLite a batch of rows joins the worker's queued writes (storage/sqlite/driver.py), run in
    the connection's thread: as a transaction of its own it held the writers' gate across several
    hops between the event loop and that thread while every writer of every worker waited."""

    async def work(engine: Any) -> tuple[int, list[dict[str, Any]]]:
        calls = reader(engine).sqlite_write_counts()[0]
        await append(engine, [_row(tenant_id, "first"), _row(tenant_id, "second")])
        calls = reader(engine).sqlite_write_counts()[0] - calls
        async with read_transaction(engine) as conn:
            return calls, await read_requests(conn, 0, 100, RequestFilter(tenant=tenant_id))

    calls, rows = run_db(database_url, work)
    assert [r["request_id"] for r in rows] == ["first", "second"]
    assert calls == (1 if database_url.startswith("sqlite") else 0)
