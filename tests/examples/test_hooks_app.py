"""examples/hooks_app.py: the host app's `accounts` table follows SCIM traffic through the hooks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner
from examples.hooks_app import create_host_app
from starlette.testclient import TestClient

from provisor.cli import main as provisor_cli
from provisor.config import Settings
from tests.scim_client import PATCH_OP, USER_URN, mint_token

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def account(client: TestClient, scim_id: str) -> dict[str, Any] | None:
    response = client.get("/accounts")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["accounts"]
    return next((row for row in rows if row["scim_id"] == scim_id), None)


def account_with(client: TestClient, scim_id: str, **expected: Any) -> dict[str, Any] | None:
    """The account once it exists with the `expected` column values, else None."""
    row = account(client, scim_id)
    return row if row is not None and all(row[k] == v for k, v in expected.items()) else None


def test_accounts_follow_create_update_deactivate_delete(
    database_url: str, tenant_id: str, app_database_url: str
) -> None:
    token = mint_token(database_url, tenant_id)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    settings = Settings(database_url=database_url, webhooks_enabled=False)
    app = create_host_app(settings, accounts_url=app_database_url)
    with TestClient(app) as client:
        assert client.get("/accounts").json() == {"accounts": []}
        assert client.get("/healthz").status_code == 200  # Provisor's own routes are served too

        created = client.post(
            "/scim/v2/Users",
            json={
                "schemas": [USER_URN],
                "userName": "ada@example.com",
                "emails": [
                    {"value": "ada.home@example.com"},
                    {"value": "ada@example.com", "primary": True},
                ],
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        row = eventually(lambda: account(client, uid))
        assert row["user_name"] == "ada@example.com"
        assert row["email"] == "ada@example.com"
        assert row["active"] is True

        # A failed request (409: duplicate userName) commits nothing, so no hook runs for it.
        dup = client.post(
            "/scim/v2/Users", json={"schemas": [USER_URN], "userName": "ada@example.com"}, headers=headers
        )
        assert dup.status_code == 409, dup.text

        renamed = client.patch(
            f"/scim/v2/Users/{uid}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "userName", "value": "ada.l@example.com"}],
            },
            headers=headers,
        )
        assert renamed.status_code == 200, renamed.text
        eventually(lambda: account_with(client, uid, user_name="ada.l@example.com"))

        off = client.patch(
            f"/scim/v2/Users/{uid}",
            json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]},
            headers=headers,
        )
        assert off.status_code == 200, off.text
        row = eventually(lambda: account_with(client, uid, active=False))
        assert row["user_name"] == "ada.l@example.com"

        on = client.patch(
            f"/scim/v2/Users/{uid}",
            json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": True}]},
            headers=headers,
        )
        assert on.status_code == 200, on.text
        eventually(lambda: account_with(client, uid, active=True))

        assert client.delete(f"/scim/v2/Users/{uid}", headers=headers).status_code == 204
        eventually(lambda: True if account(client, uid) is None else None)
        assert client.get("/accounts").json() == {"accounts": []}


def test_accounts_table_may_live_in_provisors_database(database_url: str, tenant_id: str) -> None:
    """`ACCOUNTS_DATABASE_URL` may equal Provisor's URL: the app only adds its own table."""
    token = mint_token(database_url, tenant_id)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    app = create_host_app(Settings(database_url=database_url, webhooks_enabled=False), database_url)
    with TestClient(app) as client:
        created = client.post(
            "/scim/v2/Users", json={"schemas": [USER_URN], "userName": "grace"}, headers=headers
        )
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        assert eventually(lambda: account(client, uid))["email"] is None
        assert client.delete(f"/scim/v2/Users/{uid}", headers=headers).status_code == 204
        eventually(lambda: True if account(client, uid) is None else None)


def test_same_user_id_in_two_tenants_stays_two_accounts(
    database_url: str, app_database_url: str, tmp_path: Path
) -> None:
    """A user copied into another tenant with `provisor export` / `import` keeps its id; deleting the copy
    must leave the original's account: the host app keys accounts by tenant and id."""
    home, copy = (f"t-{uuid.uuid4().hex[:12]}" for _ in range(2))
    tokens = {tenant: mint_token(database_url, tenant) for tenant in (home, copy)}
    app = create_host_app(Settings(database_url=database_url, webhooks_enabled=False), app_database_url)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {tokens[home]}", "Content-Type": "application/scim+json"}
        user = {"schemas": [USER_URN], "userName": "grace"}
        created = client.post("/scim/v2/Users", json=user, headers=headers)
        assert created.status_code == 201, created.text
        uid = created.json()["id"]

        exported = CliRunner().invoke(
            provisor_cli, ["export", "--tenant", home, "--database-url", database_url]
        )
        assert exported.exit_code == 0, exported.output
        dump = tmp_path / "users.jsonl"
        dump.write_text(exported.stdout)
        imported = CliRunner().invoke(
            provisor_cli, ["import", str(dump), "--tenant", copy, "--database-url", database_url]
        )
        assert imported.exit_code == 0, imported.output

        def rows() -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = client.get("/accounts").json()["accounts"]
            return [row for row in listed if row["scim_id"] == uid]

        both = {(home, uid), (copy, uid)}
        eventually(lambda: True if {(r.get("tenant"), r["scim_id"]) for r in rows()} == both else None)

        headers["Authorization"] = f"Bearer {tokens[copy]}"
        assert client.delete(f"/scim/v2/Users/{uid}", headers=headers).status_code == 204
        eventually(lambda: True if len(rows()) == 1 else None)
        (left,) = rows()
        assert (left["tenant"], left["user_name"]) == (home, "grace")
