"""The console in a real headless Chromium against `provisor serve`, on SQLite and PostgreSQL:
sign in, visit every page, create / revoke / rotate tokens, create / open / revoke a setup link,
change a setting, add a webhook whose delivery dies, follow a request to its events and
deliveries, redrive the dead letter. No page may log a JavaScript error (a CSP violation counts)
or open a dialog; screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import browser_page, refused_loads, screenshot
from tests.console.conftest import Console
from tests.live.server import free_port
from tests.scim_client import wait_for

XSS_NAME = "<script>alert(1)</script>"


def _submit(page: Any, form: str, button: str) -> None:
    page.locator(form).get_by_role("button", name=button).click()
    page.wait_for_load_state()


def _secret(page: Any) -> str:
    value: str = page.locator("#secret").input_value()
    assert value.startswith("prv_")
    return value


def _scim_status(console: Console, token: str) -> int:
    return httpx.get(f"{console.scim}/Users", headers=console.scim_headers(token), timeout=10).status_code


def test_an_operator_works_through_every_page(console: Console, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.id
    with browser_page() as (page, errors):
        # Sign in.
        page.goto(f"{console.root}/console/")
        assert page.url.endswith("/console/login")
        page.get_by_label("Admin token").fill(console.admin)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{console.root}/console/")
        assert "Overview" in page.title()

        # Change a setting: the tenant's request log keeps bodies from now on.
        page.goto(f"{console.root}/console/tenants")
        section = page.locator("section", has=page.get_by_role("heading", name=console.tenant))
        section.get_by_label("request_log").fill('"full"')
        section.get_by_role("button", name=f"Save {console.tenant}").click()
        page.wait_for_load_state()
        assert '"request_log":"full"' in section.locator(".current-settings").inner_text()

        # Add a webhook for the tenant on a closed port: its first attempt fails and is the last.
        dead_url = f"http://127.0.0.1:{free_port()}/hook"
        page.goto(f"{console.root}/console/webhooks")
        page.get_by_label("URL").fill(dead_url)
        page.get_by_label("Tenant").select_option(console.tenant)
        _submit(page, "form[action='/console/webhooks/add']", "Add webhook")
        assert "Added webhook" in page.locator("#result").inner_text()

        # An IdP writes a user whose displayName is markup.
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "displayName": XSS_NAME}
        body["userName"] = f"browser-{uuid.uuid4().hex[:8]}"
        created = httpx.post(f"{console.scim}/Users", json=body, headers=console.scim_headers(), timeout=10)
        assert created.status_code == 201
        user_id = created.json()["id"]

        # Follow the request to its events and their deliveries (the log is written in batches).
        def logged() -> bool:
            page.goto(f"{console.root}/console/requests?tenant={console.tenant}&method=POST")
            return page.locator("tbody tr a").count() > 0

        wait_for(logged)
        page.locator("tbody tr a").first.click()
        page.wait_for_load_state()
        assert XSS_NAME in page.locator("#request-body").inner_text()
        events = page.locator("#request-events")
        assert "created" in events.inner_text() and user_id in events.inner_text()

        def delivery_dead() -> bool:
            page.reload()
            return "dead" in page.locator("#request-events .deliveries").inner_text()

        wait_for(delivery_dead, timeout=20)
        assert dead_url in page.locator("#request-events").inner_text()
        screenshot(page, f"request-{backend}")

        # Users: search, the user's page with attributes and history; the markup stays text.
        page.goto(f"{console.root}/console/users?tenant={console.tenant}")
        page.get_by_label("Search (prefix)").fill(body["userName"])
        page.get_by_role("button", name="Search").click()
        page.wait_for_load_state()
        page.get_by_role("link", name=body["userName"]).click()
        page.wait_for_load_state()
        assert XSS_NAME in page.locator("#attributes").inner_text()
        assert "created" in page.locator("#history").inner_text()
        page.goto(f"{console.root}/console/users?tenant={console.tenant}&filter=displayName%20pr")
        assert page.locator("#resources tbody tr").count() >= 1
        page.goto(f"{console.root}/console/users?tenant={console.tenant}&filter=nonsense%20eq")
        assert page.locator(".error").count() == 1

        # Redrive the dead letter.
        page.goto(f"{console.root}/console/webhooks")
        row = page.locator("#dead tbody tr", has_text=user_id)
        row.get_by_role("button", name="Redrive").click()
        page.wait_for_load_state()
        assert "Redrove 1 dead delivery" in page.locator("#result").inner_text()

        # Tokens: create, revoke, rotate.
        page.goto(f"{console.root}/console/tokens")
        page.get_by_label("Tenant (SCIM tokens)").fill(console.tenant)
        page.get_by_label("Name").fill("browser-made")
        _submit(page, "form[action='/console/tokens/create']", "Create token")
        made = _secret(page)
        assert _scim_status(console, made) == 200
        page.goto(f"{console.root}/console/tokens")
        page.locator("tr", has_text="browser-made").get_by_role("button", name="Revoke").click()
        page.wait_for_load_state()
        assert _scim_status(console, made) == 401

        page.goto(f"{console.root}/console/tokens")
        row = page.locator("tr", has_text="browser-made").first
        assert "revoked" in row.inner_text()
        idp_row = page.locator("tr", has_text=console.tenant).filter(has_text="test").first
        idp_row.get_by_label("Overlap").fill("1h")
        idp_row.get_by_role("button", name="Rotate").click()
        page.wait_for_load_state()
        rotated = _secret(page)
        assert re.search(r"works until \S+Z; it was last used \S+", page.locator("#result").inner_text())
        assert _scim_status(console, rotated) == 200
        assert _scim_status(console, console.scim_token) == 200  # still inside the overlap

        # Setup links: create one for the tenant, open its URL (shown once), revoke it.
        page.goto(f"{console.root}/console/")
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Setup links").click()
        page.wait_for_url(f"{console.root}/console/setup-links")
        page.get_by_label("Tenant").fill(console.tenant)
        page.get_by_label("Expires in").fill("1d")
        _submit(page, "form[action='/console/setup-links/create']", "Create setup link")
        assert f"for tenant {console.tenant}" in page.locator("#result").inner_text()
        setup_url = page.get_by_label("Setup link URL").input_value()
        assert setup_url.startswith(f"{console.root}/setup/")
        link_id = setup_url.rsplit("/", 1)[1].split(".", 1)[0]
        opened = page.goto(setup_url)
        assert opened is not None and opened.status == 200
        page.goto(f"{console.root}/console/setup-links")
        row = page.locator(f"tr[data-link='{link_id}']")
        assert console.tenant in row.inner_text() and "active" in row.inner_text()
        assert setup_url.rsplit(".", 1)[1] not in page.content()  # the secret is shown only once
        screenshot(page, f"setup-links-{backend}")
        row.get_by_role("button", name=f"Revoke setup link {link_id}").click()
        page.wait_for_load_state()
        assert f"Revoked setup link {link_id}" in page.locator("#result").inner_text()
        refused = page.goto(setup_url)
        assert refused is not None and refused.status == 410
        page.goto(f"{console.root}/console/setup-links")
        assert "revoked" in page.locator(f"tr[data-link='{link_id}']").inner_text()

        # Every page once more, each with a screenshot, at desktop width.
        for name, path in [
            ("overview", "/console/"),
            ("requests", "/console/requests"),
            ("users", f"/console/users?tenant={console.tenant}"),
            ("user", f"/console/users/{console.tenant}/{user_id}"),
            ("groups", f"/console/groups?tenant={console.tenant}"),
            ("events", f"/console/events?tenant={console.tenant}"),
            ("webhooks", "/console/webhooks"),
            ("tokens", "/console/tokens"),
            ("tenants", "/console/tenants"),
            ("setup-links", "/console/setup-links"),
        ]:
            response = page.goto(console.root + path)
            assert response is not None and response.status == 200, path
            assert page.title().endswith("Provisor console")
            screenshot(page, f"{name}-{backend}")
        # The feed shows a new event without a reload.
        page.goto(f"{console.root}/console/events?tenant={console.tenant}")
        late = {"schemas": body["schemas"], "userName": f"late-{uuid.uuid4().hex[:8]}"}
        made_late = httpx.post(f"{console.scim}/Users", json=late, headers=console.scim_headers(), timeout=10)
        page.locator("#feed tr", has_text=made_late.json()["id"]).wait_for(timeout=15_000)
        assert "new event" in page.locator("#live-status").inner_text()

        # A test event to the (dead) webhook reports the failure.
        page.goto(f"{console.root}/console/webhooks")
        hook = page.locator("#webhooks tbody tr", has_text=dead_url)
        hook.get_by_role("button", name="Send test event").click()
        page.wait_for_load_state()
        assert "failed (ConnectError" in page.locator("#result").inner_text()

        # Sign out: the console is closed again.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{console.root}/console/login")
        page.goto(f"{console.root}/console/tokens")
        assert page.url.endswith("/console/login")
        errors.assert_none(*refused_loads(410))  # the revoked setup link's page, on purpose


def test_pages_are_usable_on_a_narrow_screen_and_by_keyboard(console: Console) -> None:
    with browser_page(viewport=(375, 740)) as (page, errors):
        page.goto(f"{console.root}/console/login")
        # A locator assertion, not `wait_for_function`: when the focus is not there at the first
        # look, that polls with `eval`, which the console's CSP (script-src 'self') refuses.
        expect(page.locator("#token")).to_be_focused()
        page.keyboard.type(console.admin)  # the token field has the focus (autofocus)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == f"{console.root}/console/", page.content()[:2000]
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, "the page scrolls sideways on a phone"
        screenshot(page, "overview-narrow")
        errors.assert_none()
