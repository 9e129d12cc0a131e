"""Password sync (Okta "Sync password", Entra, custom apps) on both databases: every PATCH form that
sets or removes `password` succeeds and changes nothing stored; the password is in no response,
event, request log row or table; the `on_password` hook gets it after the write commits; and
PATCH path errors speak of the PATCH path, never of filters."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from provisor.storage.event_log import DEFAULT_GAP_GRACE_SECONDS
from provisor.storage.tables import events, resources
from tests.scim_client import PATCH_OP, USER_URN, Scim, assert_error, mint_token, run_db, wait_for, whole_feed
from tests.security.helpers import admin_get

#: Each form an IdP sends to set or remove a password, with the secret it carries (None: a remove).
PASSWORD_FORMS: list[tuple[dict[str, Any], str | None]] = [
    ({"op": "replace", "value": {"password": "okta-pathless-1"}}, "okta-pathless-1"),
    ({"op": "replace", "path": "password", "value": "custom-path-2"}, "custom-path-2"),
    ({"op": "add", "path": "password", "value": "add-path-3"}, "add-path-3"),
    ({"op": "Replace", "path": "password", "value": "entra-case-4"}, "entra-case-4"),
    ({"op": "REPLACE", "value": {"Password": "upper-5"}}, "upper-5"),
    ({"op": "Add", "value": {"password": "entra-add-6"}}, "entra-add-6"),
    ({"op": "replace", "path": f"{USER_URN}:password", "value": "urn-path-7"}, "urn-path-7"),
    ({"op": "replace", "value": {USER_URN: {"password": "section-8"}}}, "section-8"),
    ({"op": "replace", "value": {f"{USER_URN}:password": "urn-key-9"}}, "urn-key-9"),
    ({"op": "replace", "path": USER_URN, "value": {"password": "section-path-10"}}, "section-path-10"),
    ({"op": "remove", "path": "password"}, None),
    ({"op": "Remove", "path": "PASSWORD"}, None),
]
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SECRETS = [secret for _, secret in PASSWORD_FORMS if secret is not None]


def tenant_events(scim: Scim) -> list[dict[str, Any]]:
    """The tenant's events as the admin feed serves them, once the feed has passed every one of
    them. On PostgreSQL the feed stops at a gap in seq for up to its grace period
    (storage/event_log.py), and another test sharing the database can leave one (a rolled-back
    write), so the feed is read until it holds as many events as the table does."""

    async def stored(engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            query = select(func.count()).select_from(events).where(events.c.tenant_id == scim.tenant_id)
            return int((await conn.execute(query)).scalar_one())

    expected = run_db(scim.database_url, stored)
    feed: list[dict[str, Any]] = []

    def caught_up() -> bool:
        feed[:] = whole_feed(
            lambda params: admin_get(scim, "/events", **params), tenant=scim.tenant_id, limit=1000
        )
        return len(feed) >= expected

    wait_for(caught_up, 2 * DEFAULT_GAP_GRACE_SECONDS)
    return feed


def stored_rows(scim: Scim) -> str:
    """Every resource and event row of the tenant, as text (what a leak would show up in)."""

    async def read(engine: AsyncEngine) -> str:
        async with engine.connect() as conn:
            docs = (
                await conn.execute(select(resources).where(resources.c.tenant_id == scim.tenant_id))
            ).all()
            feed = (await conn.execute(select(events).where(events.c.tenant_id == scim.tenant_id))).all()
        return repr(docs) + repr(feed)

    return run_db(scim.database_url, read)


def test_every_password_patch_form_succeeds_and_changes_nothing(scim: Scim) -> None:
    scim.settings(request_log="full")
    user = scim.create_user("sync@example.com", displayName="Sync", password="created-secret")
    before = scim.get(f"/Users/{user['id']}")
    for operation, _ in PASSWORD_FORMS:
        response = scim.patch_ops(f"/Users/{user['id']}", operation)
        assert response.status_code == 200, (operation, response.text)
        assert response.json() == before.json(), operation  # nothing changed, not even the version
        assert response.headers["etag"] == before.headers["etag"]
    assert scim.get(f"/Users/{user['id']}").json() == before.json()
    # A password-only PATCH stores nothing: no new version, so no event beyond the creation.
    assert [(e["op"], e["version"]) for e in tenant_events(scim)] == [("created", 1)]
    leaked = orjson.dumps(admin_get(scim, "/requests", tenant=scim.tenant_id).json()).decode()
    leaked += orjson.dumps(tenant_events(scim)).decode() + stored_rows(scim)
    for secret in ("created-secret", *SECRETS):
        assert secret not in leaked, secret
    assert leaked.count("[redacted]") >= 1 + len(SECRETS)  # the full log kept the bodies, redacted


def test_a_password_with_other_changes_applies_only_the_others(scim: Scim) -> None:
    user = scim.create_user("mixed@example.com", displayName="Before")
    response = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "Replace", "value": {"password": "mixed-secret", "displayName": "After"}},
        {"op": "replace", "path": "password", "value": "mixed-secret-2"},
        {"op": "replace", "path": "title", "value": "Engineer"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["displayName"] == "After" and body["title"] == "Engineer" and "password" not in body
    assert body["meta"]["version"] == 'W/"2"'
    assert [e["op"] for e in tenant_events(scim)] == ["created", "updated"]
    text = orjson.dumps(tenant_events(scim)).decode() + stored_rows(scim)
    assert "mixed-secret" not in text


def test_strict_patch_accepts_passwords_too_and_groups_patch_as_before(scim: Scim) -> None:
    scim.settings(strict_patch=True, patch_204_users=True)
    user = scim.create_user("strict@example.com")
    response = scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "password", "value": "s"})
    assert response.status_code == 204, response.text
    response = scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "value": {"password": "s2"}})
    assert response.status_code == 204, response.text
    group = scim.create_group("G")
    response = scim.patch_ops(
        f"/Groups/{group['id']}", {"op": "replace", "path": "displayName", "value": "H"}
    )
    assert response.status_code == 204, response.text


def test_a_password_that_is_not_a_string_is_refused_and_nothing_is_written(scim: Scim) -> None:
    user = scim.create_user("typed@example.com", displayName="Typed")
    before = scim.get(f"/Users/{user['id']}").json()
    response = scim.patch_ops(
        f"/Users/{user['id']}",
        {"op": "replace", "path": "displayName", "value": "Changed"},
        {"op": "replace", "path": "password", "value": {"nested": "object"}},
    )
    assert_error(response, 400, "invalidValue")
    assert scim.get(f"/Users/{user['id']}").json() == before


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("favouriteColour", '"favouriteColour"'),
        ("name.nosuch", '"name.nosuch"'),
        ('emails[nosuch eq "x"].value', '"emails[nosuch eq "x"].value"'),
        ("emails[type eq", '"emails[type eq"'),
    ],
)
def test_patch_path_errors_name_the_patch_path_not_a_filter(scim: Scim, path: str, quoted: str) -> None:
    user = scim.create_user(f"paths-{len(path)}@example.com")
    response = scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": path, "value": "x"})
    body = assert_error(response, 400, "invalidPath")
    assert body["detail"].startswith(f"invalid PATCH path {quoted}"), body
    assert "cannot be used in a filter" not in body["detail"]


def test_a_filter_on_password_still_says_filter(scim: Scim) -> None:
    response = scim.get("/Users", params={"filter": 'password eq "x"'})
    body = assert_error(response, 400, "invalidFilter")
    assert "cannot be used in a filter" in body["detail"]


# ---- the on_password hook ----------------------------------------------------------------------


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail

    async def on_password(self, tenant: str, user_id: str, password: str) -> None:
        self.calls.append((tenant, user_id, password))
        if self.fail:
            raise RuntimeError(f"local store rejected {password}")


def hooked_client(database_url: str, tenant_id: str, hooks: Any) -> tuple[TestClient, dict[str, str]]:
    token = mint_token(database_url, tenant_id)
    app = create_app(Settings(database_url=database_url, webhooks_enabled=False), hooks=hooks)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    return TestClient(app), headers


def test_on_password_gets_each_password_after_the_write(database_url: str, tenant_id: str) -> None:
    hooks = Recorder()
    client, headers = hooked_client(database_url, tenant_id, hooks)
    with client:
        created = client.post(
            "/scim/v2/Users",
            headers=headers,
            json={"schemas": [USER_URN], "userName": "h", "password": "p-post"},
        )
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        assert hooks.calls == [(tenant_id, uid, "p-post")]
        ops = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"password": "p-patch"}}]}
        assert client.patch(f"/scim/v2/Users/{uid}", headers=headers, json=ops).status_code == 200
        put = {"schemas": [USER_URN], "userName": "h", "password": "p-put"}
        assert client.put(f"/scim/v2/Users/{uid}", headers=headers, json=put).status_code == 200
        # A refused write calls no hook: a stale If-Match is 412 before anything is committed.
        stale = client.patch(f"/scim/v2/Users/{uid}", headers={**headers, "If-Match": 'W/"99"'}, json=ops)
        assert stale.status_code == 412, stale.text
        removed = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "password"}]}
        assert client.patch(f"/scim/v2/Users/{uid}", headers=headers, json=removed).status_code == 200
        nothing = {"schemas": [USER_URN], "userName": "h"}
        assert client.put(f"/scim/v2/Users/{uid}", headers=headers, json=nothing).status_code == 200
        assert hooks.calls == [
            (tenant_id, uid, "p-post"),
            (tenant_id, uid, "p-patch"),
            (tenant_id, uid, "p-put"),
        ]
        hooks.calls.clear()
        bulk = {
            "schemas": [BULK_REQUEST],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": name,
                    "data": {"userName": name, "password": f"b-{name}"},
                }
                for name in ("b1", "b2")
            ],
        }
        answered = client.post("/scim/v2/Bulk", headers=headers, json=bulk)
        assert answered.status_code == 200, answered.text
        ids = [o["location"].rsplit("/", 1)[-1] for o in answered.json()["Operations"]]
    assert hooks.calls == [(tenant_id, ids[0], "b-b1"), (tenant_id, ids[1], "b-b2")]


def test_a_raising_hook_is_logged_without_the_password_and_the_request_succeeds(
    database_url: str, tenant_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = Recorder(fail=True)
    client, headers = hooked_client(database_url, tenant_id, hooks)
    with client, caplog.at_level(logging.INFO):
        created = client.post(
            "/scim/v2/Users",
            headers=headers,
            json={"schemas": [USER_URN], "userName": "f", "password": "p-fail"},
        )
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        assert client.get(f"/scim/v2/Users/{uid}", headers=headers).status_code == 200  # it was stored
    assert hooks.calls == [(tenant_id, uid, "p-fail")]
    failures = [r for r in caplog.records if "on_password" in r.getMessage()]
    assert failures and uid in failures[0].getMessage()
    assert all("p-fail" not in (r.getMessage() + str(r.exc_info or "")) for r in caplog.records)
