"""The console's setup-links page over real HTTP against `provisor serve`, on both databases:
a link made there is shown once and opens the tenant's setup page, revoking it makes that page
410, forms without the session's CSRF token are refused, and an unknown tenant or a bad expiry
makes nothing."""

from __future__ import annotations

import re
import uuid

import httpx
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from tests.console.conftest import Console, csrf_of
from tests.scim_client import mint_token

URL_FIELD = re.compile(r'id="secret" class="secret" type="text" readonly value="([^"]+)"')


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-link="([0-9a-f]{16})">', html)


def _create(client: httpx.Client, csrf: str, tenant: str, expires_in: str = "7d") -> httpx.Response:
    form = {"csrf": csrf, "tenant": tenant, "expires_in": expires_in}
    return client.post("/console/setup-links/create", data=form)


def test_a_link_made_in_the_console_is_shown_once_opens_the_setup_page_and_revokes(console: Console) -> None:
    with console.signed_in() as client:
        listing = client.get("/console/setup-links")
        assert listing.status_code == 200
        assert 'href="/console/setup-links" aria-current="page"' in listing.text
        csrf = csrf_of(listing.text)
        before = set(_rows(listing.text))

        made = _create(client, csrf, console.tenant, "2d")
        assert made.status_code == 200, made.text
        found = URL_FIELD.search(made.text)
        assert found is not None, made.text
        url = found.group(1)
        assert url.startswith(f"{console.root}/setup/")  # no PROVISOR_BASE_URL: the request's root
        link_id, secret = url.rsplit("/", 1)[1].split(".", 1)
        assert f"for tenant {console.tenant}" in made.text

        # The customer's page opens with the tenant's settings.
        opened = httpx.get(url, timeout=10)
        assert opened.status_code == 200
        assert f"{console.root}/scim/v2" in opened.text and console.tenant in opened.text

        # The list names the link with its tenant and use, never its secret.
        listing = client.get("/console/setup-links").text
        assert set(_rows(listing)) == before | {link_id}
        row = listing.split(f'<tr data-link="{link_id}">', 1)[1].split("</tr>", 1)[0]
        assert console.tenant in row and ">active<" in row and "never" not in row  # last used: just now
        assert secret not in listing and url not in listing

        # Revoking needs the CSRF token; with it the page answers 410 from then on.
        assert client.post(f"/console/setup-links/{link_id}/revoke", data={}).status_code == 403
        assert httpx.get(url, timeout=10).status_code == 200
        revoked = client.post(f"/console/setup-links/{link_id}/revoke", data={"csrf": csrf})
        assert revoked.status_code == 200 and f"Revoked setup link {link_id}" in revoked.text
        assert httpx.get(url, timeout=10).status_code == 410
        row = client.get("/console/setup-links").text.split(f'<tr data-link="{link_id}">', 1)[1]
        assert ">revoked<" in row.split("</tr>", 1)[0] and "/revoke" not in row.split("</tr>", 1)[0]
        again = client.post(f"/console/setup-links/{link_id}/revoke", data={"csrf": csrf})
        assert again.status_code == 404 and "No live setup link" in again.text


def test_forms_without_the_csrf_token_are_refused_and_make_nothing(console: Console) -> None:
    with console.signed_in() as client:
        before = _rows(client.get("/console/setup-links").text)
        for data in ({}, {"csrf": ""}, {"csrf": "0" * 64}):
            refused = client.post("/console/setup-links/create", data={**data, "tenant": console.tenant})
            assert refused.status_code == 403
        assert _rows(client.get("/console/setup-links").text) == before
    # Without a session at all: refused as well.
    anonymous = httpx.post(f"{console.root}/console/setup-links/create", data={"tenant": console.tenant})
    assert anonymous.status_code == 403


def test_an_unknown_tenant_or_a_bad_expiry_is_refused_with_a_message(console: Console) -> None:
    missing = f"nobody-{uuid.uuid4().hex[:8]}"
    with console.signed_in() as client:
        page = client.get("/console/setup-links").text
        csrf, before = csrf_of(page), _rows(page)
        unknown = _create(client, csrf, missing)
        assert unknown.status_code == 404 and f"no tenant {missing}" in unknown.text
        assert 'id="secret"' not in unknown.text
        markup = _create(client, csrf, "<b>x</b>")
        assert markup.status_code == 404 and "no tenant &lt;b&gt;x&lt;/b&gt;" in markup.text
        for bad in ("soon", "0d", "91d", "7 weeks"):
            refused = _create(client, csrf, console.tenant, bad)
            assert refused.status_code == 400, bad
            assert "Not created" in refused.text and 'id="secret"' not in refused.text
        empty = _create(client, csrf, "  ")
        assert empty.status_code == 400 and "name the tenant" in empty.text
        assert _rows(client.get("/console/setup-links").text) == before
        # No tenant was made on the way.
        assert missing not in client.get("/console/tenants").text
    listed = httpx.get(
        f"{console.root}/admin/v1/setup-links",
        headers={"Authorization": f"Bearer {console.admin}"},
        params={"tenant": missing},
        timeout=10,
    )
    assert listed.status_code == 200 and listed.json()["setup_links"] == []


def test_the_link_uses_the_public_base_url_when_one_is_set(database_url: str, tenant_id: str) -> None:
    admin = mint_token(database_url, None, kind="admin")
    mint_token(database_url, tenant_id)  # makes the tenant
    settings = Settings(
        database_url=database_url, webhooks_enabled=False, base_url="https://idp.example.com/scim/v2"
    )
    with TestClient(create_app(settings), base_url="https://idp.example.com") as client:
        signed_in = client.post("/console/login", data={"token": admin}, follow_redirects=False)
        assert signed_in.status_code == 303
        csrf = csrf_of(client.get("/console/setup-links").text)
        made = client.post("/console/setup-links/create", data={"csrf": csrf, "tenant": tenant_id})
        found = URL_FIELD.search(made.text)
        assert made.status_code == 200 and found is not None
        url = found.group(1)
        assert url.startswith("https://idp.example.com/setup/")  # /scim/v2 dropped, as the CLI does
        assert client.get(url.removeprefix("https://idp.example.com")).status_code == 200
