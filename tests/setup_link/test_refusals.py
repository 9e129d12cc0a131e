"""Links that must not work (expired, altered, revoked, forged form posts), on both databases,
in a real browser against a real server; and the CLI's answers around them."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import Page, expect

from tests.browser import BrowserErrors, refused_loads
from tests.live.server import LiveServer
from tests.setup_link.helpers import cli, create_link, link_id, root_of


def _script_errors(errors: BrowserErrors, *statuses: int) -> list[str]:
    """What the page logged besides the expected refusals themselves (Chromium reports a document
    or fetch answered 4xx as a console error); anything else fails the test."""
    return errors.unexpected(*refused_loads(*statuses))


def _altered(url: str, position: int) -> str:
    char = url[position]
    return url[:position] + ("b" if char != "b" else "c") + url[position + 1 :]


def test_altered_and_expired_links_are_refused(
    server: LiveServer, database_url: str, tenant_id: str, page: Page, page_errors: BrowserErrors
) -> None:
    root = root_of(server.base_url)
    started = time.monotonic()
    url = create_link(database_url, tenant_id, root, expires_in="8s")
    ok = page.goto(url)
    assert ok is not None and ok.status == 200
    id_start = len(f"{root}/setup/")
    for position in (len(url) - 1, len(url) - 20, id_start, id_start + 15):
        refused = page.goto(_altered(url, position))
        assert refused is not None and refused.status == 404, position
        expect(page.get_by_role("heading", level=1)).to_have_text("Setup link not found")
        assert httpx.get(f"{_altered(url, position)}/status").status_code == 404
    for cut in (url[:-1], url + "x", "".join(url.rsplit(".", 1)), f"{root}/setup/"):
        assert httpx.get(cut).status_code == 404, cut

    # The CLI's own start-up comes between `started` and the link's creation: wait for the expiry.
    time.sleep(max(0.0, started + 8.0 - time.monotonic()))
    deadline = time.monotonic() + 15
    while httpx.get(f"{url}/status").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    expired = page.goto(url)
    assert expired is not None and expired.status == 410
    expect(page.get_by_role("heading", level=1)).to_contain_text("expired or was revoked")
    assert httpx.get(f"{url}/status").status_code == 410
    assert httpx.post(f"{url}/token", data={"csrf": "x"}).status_code == 410
    listed = cli("setup-link", "list", "--tenant", tenant_id, database_url=database_url)
    assert listed.returncode == 0 and link_id(url) in listed.stdout and "expired" in listed.stdout
    assert _script_errors(page_errors, 404, 410) == []


def test_revoking_stops_an_open_page(
    server: LiveServer, database_url: str, tenant_id: str, page: Page, page_errors: BrowserErrors
) -> None:
    url = create_link(database_url, tenant_id, root_of(server.base_url))
    page.goto(url)
    expect(page.locator("#poll-state")).to_contain_text("checks passed")
    revoked = cli("setup-link", "revoke", link_id(url), database_url=database_url)
    assert revoked.returncode == 0, revoked.stderr
    # The page already open notices at its next poll and stops polling.
    expect(page.locator("#poll-state")).to_contain_text("no longer valid", timeout=10_000)
    # Its form is refused too, and reloading shows the refusal.
    page.get_by_role("button", name="Create the SCIM token").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("expired or was revoked")
    reloaded = page.goto(url)
    assert reloaded is not None and reloaded.status == 410
    again = cli("setup-link", "revoke", link_id(url), database_url=database_url)
    assert again.returncode == 2 and "no live setup link" in again.stderr
    listed = cli("setup-link", "list", database_url=database_url)
    line = next(row for row in listed.stdout.splitlines() if row.startswith(link_id(url)))
    assert line.endswith("revoked") and tenant_id in line and url.rsplit(".", 1)[1] not in listed.stdout
    assert _script_errors(page_errors, 410) == []


def test_token_form_needs_the_pages_own_cookie_and_field(
    server: LiveServer, database_url: str, tenant_id: str, page: Page, page_errors: BrowserErrors
) -> None:
    url = create_link(database_url, tenant_id, root_of(server.base_url))
    page.goto(url)
    field = page.locator("input[name=csrf]").input_value()
    # Without the SameSite=Strict cookie (another site's form, a script elsewhere): refused.
    assert httpx.post(f"{url}/token", data={"csrf": field}).status_code == 403
    cookie = next(c for c in page.context.cookies() if c["name"].startswith("provisor_setup_"))
    assert cookie["sameSite"] == "Strict" and cookie["httpOnly"] and cookie["path"] == "/setup/"
    jar = {cookie["name"]: cookie["value"]}
    # With the cookie but a field bound to another link or nonce: refused.
    other = create_link(database_url, tenant_id, root_of(server.base_url))
    assert httpx.post(f"{other}/token", data={"csrf": field}, cookies=jar).status_code == 403
    altered = field[:-1] + ("1" if field.endswith("0") else "0")  # one character changed, always
    assert httpx.post(f"{url}/token", data={"csrf": altered}, cookies=jar).status_code in (403,)
    assert httpx.post(f"{url}/token", data={}, cookies=jar).status_code == 403
    # The page's own form works.
    minted = httpx.post(f"{url}/token", data={"csrf": field}, cookies=jar)
    assert minted.status_code == 200 and 'id="minted-token"' in minted.text
    assert _script_errors(page_errors) == []


def test_cli_refuses_an_unknown_tenant_and_a_bad_lifetime(fresh_database_url: str) -> None:
    unknown = cli("setup-link", "create", "--tenant", "nobody", database_url=fresh_database_url)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "Error: no tenant nobody; create it with `provisor tenant create nobody`"
    ]
    assert cli("tenant", "create", "acme", database_url=fresh_database_url).returncode == 0
    for bad in ("7", "0d", "91d", "1w"):
        done = cli(
            "setup-link", "create", "--tenant", "acme", "--expires-in", bad, database_url=fresh_database_url
        )
        assert done.returncode == 2 and "--expires-in" in done.stderr, bad
    listed = cli("setup-link", "list", database_url=fresh_database_url)
    assert listed.returncode == 0 and listed.stdout == ""
