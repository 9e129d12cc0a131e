"""The setup page in a real browser against a real `provisor serve`, on SQLite and PostgreSQL:
a link made with the CLI, a token minted on the page, and the checklist ticking live while the
test plays an Okta-like provisioning run with that token."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.live.server import LiveServer
from tests.setup_link.conftest import PageErrors
from tests.setup_link.helpers import (
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    SCIM_JSON,
    USER_SCHEMA,
    cli,
    create_link,
    link_id,
    root_of,
    scim_token,
)

XSS = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'
#: The poll runs every 2 s; a check must tick within a few polls.
TICK_MS = 10_000


def _tick(page: Page, key: str) -> None:
    item = page.locator(f"#check-{key}")
    expect(item).to_have_class("done", timeout=TICK_MS)
    expect(item.locator(".mark")).to_have_text("✓")


def _pending(page: Page, keys: list[str]) -> None:
    for key in keys:
        expect(page.locator(f"#check-{key}")).to_have_class("pending")


def _mint(page: Page) -> str:
    page.get_by_role("button", name=re.compile("token", re.I)).click()
    field = page.get_by_label(re.compile("Your SCIM token"))
    expect(field).to_be_visible()
    token = field.input_value()
    assert token.startswith("prv_")
    return token


def _other_tenant_traffic(server: LiveServer, database_url: str, tenant: str) -> None:
    """Another tenant's successful and failing requests, each carrying a marker."""
    token = scim_token(database_url, tenant, "other-idp")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
    with httpx.Client(base_url=server.base_url, headers=headers) as other:
        assert other.get("/Users", params={"filter": 'userName eq "other-marker@x.test"'}).status_code == 200
        body = {"schemas": [USER_SCHEMA], "userName": "other-marker@x.test"}
        assert other.post("/Users", json=body).status_code == 201
        assert other.post("/Users", json=body).status_code == 409
        assert other.get("/Users/other-tenant-marker").status_code == 404


def test_checklist_ticks_live_during_an_okta_like_run(
    server: LiveServer, database_url: str, tenant_id: str, page: Page, page_errors: PageErrors
) -> None:
    other_tenant = f"{tenant_id}-other"
    root = root_of(server.base_url)
    url = create_link(database_url, tenant_id, root)
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    expect(page).to_have_title(re.compile("Connect your identity provider"))
    expect(page.get_by_label("SCIM base URL")).to_have_value(f"{root}/scim/v2")
    expect(page.locator("#poll-state")).to_contain_text("0 of 6 checks passed")
    _pending(page, ["authenticated", "existence_check", "user_created", "group_pushed"])

    token = _mint(page)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": SCIM_JSON}
    _other_tenant_traffic(server, database_url, other_tenant)
    # The tenant's other tokens are not this link's: their requests tick nothing.
    admin_made = {"Authorization": f"Bearer {server.token}"}
    assert httpx.get(f"{server.base_url}/Users", headers=admin_made).status_code == 200

    with httpx.Client(base_url=server.base_url, headers=headers) as idp:
        found = idp.get("/Users", params={"filter": 'userName eq "ada@example.com"'})
        assert found.status_code == 200 and found.json()["totalResults"] == 0
        _tick(page, "authenticated")
        _tick(page, "existence_check")
        _pending(page, ["user_created", "user_updated", "user_deactivated", "group_pushed"])

        user = {
            "schemas": [USER_SCHEMA],
            "userName": "ada@example.com",
            "displayName": XSS,
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@example.com", "type": "work", "primary": True}],
            "active": True,
        }
        created = idp.post("/Users", json=user)
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        _tick(page, "user_created")
        # The user's displayName is shown as text: no element is made from it, no script runs.
        expect(page.locator("#check-user_created .state")).to_contain_text(f"{XSS} / ada@example.com")
        assert page.locator("#checks script, #checks img").count() == 0
        assert idp.get(f"/Users/{user_id}").status_code == 200

        replaced = idp.put(f"/Users/{user_id}", json={**user, "displayName": "Ada L."})
        assert replaced.status_code == 200, replaced.text
        _tick(page, "user_updated")
        _pending(page, ["user_deactivated"])

        patch = {"schemas": [PATCH_SCHEMA], "Operations": [{"op": "replace", "value": {"active": False}}]}
        assert idp.patch(f"/Users/{user_id}", json=patch).status_code == 200
        _tick(page, "user_deactivated")

        group = idp.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Engineering"})
        assert group.status_code == 201, group.text
        _tick(page, "group_pushed")
        members = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}],
        }
        assert idp.patch(f"/Groups/{group.json()['id']}", json=members).status_code in (200, 204)

        # The failing request: its status, scimType, detail, method and path are named.
        duplicate = idp.post("/Users", json=user)
        assert duplicate.status_code == 409
        detail = duplicate.json()["detail"]
        errors = page.locator("#errors li")
        expect(errors.first).to_contain_text("409 POST /scim/v2/Users", timeout=TICK_MS)
        expect(errors.first).to_contain_text("scimType uniqueness")
        expect(errors.first).to_contain_text(detail)
        expect(page.locator("#no-errors")).to_be_hidden()

        # Payloads in paths and error details are shown as text, never run.
        assert idp.get(f"/Users/{IMG}").status_code == 404
        assert idp.get("/Users", params={"filter": XSS}).status_code == 400
        expect(page.locator("#errors")).to_contain_text(IMG, timeout=TICK_MS)
        expect(page.locator("#errors")).to_contain_text(f"400 GET /scim/v2/Users?filter={XSS}")
        expect(page.locator("#errors")).to_contain_text("scimType invalidFilter")
        assert page.locator("#errors img, #errors script").count() == 0

    expect(page.locator("#poll-state")).to_contain_text("6 of 6 checks passed")
    text = page.locator("body").inner_text()
    assert "other-marker" not in text and "other-tenant-marker" not in text
    status = httpx.get(f"{url}/status").json()
    assert all(error["path"].find("other") < 0 for error in status["errors"])
    assert len(status["errors"]) == 3  # this link's failures only, not the other tenant's
    assert page_errors.messages == []


def test_minting_again_revokes_the_previous_token(
    server: LiveServer, database_url: str, tenant_id: str, page: Page, page_errors: PageErrors
) -> None:
    url = create_link(database_url, tenant_id, root_of(server.base_url))
    page.goto(url)
    first = _mint(page)
    assert page.get_by_role("button", name=re.compile("revokes", re.I)).is_visible()
    second = _mint(page)
    assert second != first
    users = f"{server.base_url}/Users"
    assert httpx.get(users, headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert httpx.get(users, headers={"Authorization": f"Bearer {second}"}).status_code == 200
    # With the tenant's request log off the page says why nothing can tick.
    expect(page.locator("#log-warning")).to_be_hidden()
    off = cli("tenant", "set", tenant_id, "request_log=off", database_url=database_url)
    assert off.returncode == 0, off.stderr
    expect(page.locator("#log-warning")).to_contain_text("request log is off", timeout=10_000)
    # Revoking the link leaves the token it minted working (the IdP keeps provisioning).
    assert cli("setup-link", "revoke", link_id(url), database_url=database_url).returncode == 0
    assert httpx.get(users, headers={"Authorization": f"Bearer {second}"}).status_code == 200
    assert page_errors.messages == []


def test_page_is_accessible_by_keyboard_and_on_a_narrow_screen(
    server: LiveServer, database_url: str, tenant_id: str, page: Page, page_errors: PageErrors
) -> None:
    url = create_link(database_url, tenant_id, root_of(server.base_url))
    page.set_viewport_size({"width": 360, "height": 780})
    page.goto(url)
    assert page.evaluate("document.documentElement.lang") == "en"
    # Every visible form control has a label.
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), button, select, textarea')]
             .filter(e => e.tagName !== 'BUTTON' && !(e.labels && e.labels.length))
             .map(e => e.outerHTML)"""
    )
    assert unlabeled == []
    # The first Tab reaches the skip link; each IdP's section opens from the keyboard.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    for idp in ("okta", "entra", "onelogin", "jumpcloud", "google", "generic"):
        summary = page.locator(f"#{idp} > summary")
        summary.focus()
        page.keyboard.press("Enter")
        assert page.locator(f"#{idp}").get_attribute("open") is not None, idp
    expect(page.locator("#okta")).to_contain_text("SCIM connector base URL")
    expect(page.locator("#okta")).to_contain_text("Unique identifier field for users")
    expect(page.locator("#entra")).to_contain_text("Tenant URL")
    expect(page.locator("#onelogin")).to_contain_text("SCIM Bearer Token")
    expect(page.locator("#jumpcloud")).to_contain_text("Token Key")
    expect(page.locator("#google")).to_contain_text("Endpoint URL")
    expect(page.locator("#generic")).to_contain_text(f"{root_of(server.base_url)}/scim/v2")
    # Nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page_errors.messages == []
