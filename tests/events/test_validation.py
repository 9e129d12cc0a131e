"""Unknown values are refused, never silently matched against nothing: the CLI exits 2, the admin
API answers 400 with a SCIM error. `Users` / `Groups` are documented aliases of `User` / `Group`."""

from __future__ import annotations

import pytest

from tests.events.support import bearer, client, mint
from tests.live.test_cli_errors import assert_short_error, run
from tests.scim_client import whole_feed

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_webhook_add_refuses_unknown_ops_and_tenants(database_url: str, tenant_id: str) -> None:
    mint(database_url, tenant_id)
    url = "http://127.0.0.1:9/hook"
    bogus = run("webhook", "add", url, "--events", "created,bogus", "--database-url", database_url)
    assert_short_error(bogus, 2, "bogus", "member_added")
    nosuch = run("webhook", "add", url, "--tenant", f"{tenant_id}-nosuch", "--database-url", database_url)
    assert_short_error(nosuch, 2, f"no tenant {tenant_id}-nosuch")
    listed = run("webhook", "list", "--database-url", database_url)
    assert "bogus" not in listed.stdout and f"{tenant_id}-nosuch" not in listed.stdout
    ok = run(
        "webhook",
        "add",
        url,
        "--events",
        "created,Member_Added",
        "--tenant",
        tenant_id,
        "--database-url",
        database_url,
    )
    assert ok.returncode == 0, ok.stderr
    hook_id = ok.stdout.strip().splitlines()[-1]
    assert run("webhook", "remove", hook_id, "--database-url", database_url).returncode == 0


@pytest.mark.parametrize(
    "command",
    [
        ("webhook", "redrive", "--webhook", "nonexistent"),
        ("webhook", "dead", "--webhook", "nonexistent"),
        ("webhook", "remove", "nonexistent"),
        ("token", "revoke", "nonexistent"),
        ("tenant", "set", "nosuch-tenant", "strict_patch=true"),
        ("tenant", "delete", "nosuch-tenant"),
        ("log", "tail", "--tenant", "nosuch-tenant"),
        ("serve", "--log-level", "verbose"),
        ("serve", "--workers", "0"),
    ],
    ids=" ".join,
)
def test_unknown_names_exit_2(command: tuple[str, ...], database_url: str) -> None:
    result = run(*command, "--database-url", database_url)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_admin_feed_validates_type_op_and_tenant(database_url: str, tenant_id: str) -> None:
    scim, admin = mint(database_url, tenant_id), mint(database_url, None, "admin")
    with client(database_url) as c:
        made = c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "ada"}, headers=bearer(scim))
        assert made.status_code == 201
        for type_ in ("User", "Users", "user"):
            events = whole_feed(
                lambda params: c.get("/admin/v1/events", params=params, headers=bearer(admin)),
                type=type_,
                tenant=tenant_id,
            )
            assert [e["op"] for e in events] == ["created"], type_
        for params in (
            {"type": "Userz"},
            {"op": "created,bogus"},
            {"tenant": f"{tenant_id}-nosuch"},
            {"tenant": "Bad Name!"},
        ):
            response = c.get("/admin/v1/events", params=params, headers=bearer(admin))
            assert response.status_code == 400, (params, response.text)
            error = response.json()
            assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            assert error["scimType"] == "invalidValue" and error["status"] == "400"
        requests = c.get("/admin/v1/requests", params={"tenant": "nosuch-x"}, headers=bearer(admin))
        assert requests.status_code == 400, requests.text
