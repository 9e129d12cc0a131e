"""The console's security properties over real HTTP against `provisor serve`, on both databases:
who can sign in, the cookie's flags, CSRF, server-side logout, and escaping."""

from __future__ import annotations

import uuid

import httpx
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from tests.console.conftest import Console, csrf_of
from tests.scim_client import mint_token

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def _login(console: Console, token: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{console.root}/console/login", data={"token": token}, headers=headers, timeout=10)


def test_without_a_session_every_page_redirects_to_the_login_form(console: Console) -> None:
    for path in ("/console/", "/console/users", "/console/tokens", "/console/requests/1"):
        response = httpx.get(console.root + path, timeout=10)
        assert response.status_code == 303
        assert response.headers["location"] == "/console/login"
    form = httpx.get(f"{console.root}/console/login", timeout=10).text
    assert form.count("<input") == 1 and 'name="token"' in form


def test_only_an_admin_token_of_this_deployment_signs_in(console: Console, tmp_path: object) -> None:
    other_db = f"sqlite:///{tmp_path}/other.db"
    from tests.conftest import _migrate, _run

    _run(_migrate(other_db))
    foreign_admin = mint_token(other_db, None, kind="admin")
    for secret in (console.scim_token, "prv_" + uuid.uuid4().hex, foreign_admin, ""):
        response = _login(console, secret)
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
    assert _login(console, console.admin).status_code == 303


def test_the_session_cookie_is_httponly_strict_and_scoped(console: Console) -> None:
    response = _login(console, console.admin)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the HTTPS test below
    session_id = response.cookies["provisor_console"]
    assert session_id not in response.headers["location"]


def test_the_cookie_is_secure_over_https_and_behind_an_https_proxy(sqlite_url: str) -> None:
    admin = mint_token(sqlite_url, None, kind="admin")
    direct = create_app(Settings(database_url=sqlite_url, webhooks_enabled=False))
    with TestClient(direct, base_url="https://testserver") as client:
        response = client.post("/console/login", data={"token": admin}, follow_redirects=False)
        assert "Secure" in response.headers["set-cookie"]
    proxied = create_app(
        Settings(database_url=sqlite_url, webhooks_enabled=False, base_url="https://idp.example.com/scim/v2")
    )
    with TestClient(proxied, base_url="http://testserver") as client:
        response = client.post("/console/login", data={"token": admin}, follow_redirects=False)
        assert "Secure" in response.headers["set-cookie"]


def test_a_cross_site_sign_in_is_refused(console: Console) -> None:
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        response = _login(console, console.admin, **headers)
        assert response.status_code == 403 and "set-cookie" not in response.headers
    assert _login(console, console.admin, **{"Sec-Fetch-Site": "same-origin"}).status_code == 303


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(console: Console) -> None:
    victim = mint_token(console.database_url, console.tenant, name="csrf-victim")
    with console.signed_in() as client:
        page = client.get("/console/tokens")
        token_id = page.text.split("csrf-victim")[0].rsplit('data-token="', 1)[1].split('"')[0]
        for data in ({}, {"csrf": "0" * 64}, {"csrf": ""}):
            refused = client.post(f"/console/tokens/{token_id}/revoke", data=data)
            assert refused.status_code == 403
        other = httpx.post(
            f"{console.root}/console/tokens/{token_id}/revoke", data={"csrf": csrf_of(page.text)}, timeout=10
        )
        assert other.status_code == 403  # a valid token without the session's cookie
        users = httpx.get(f"{console.scim}/Users", headers=console.scim_headers(victim), timeout=10)
        assert users.status_code == 200, "a refused form revoked the token"
        done = client.post(f"/console/tokens/{token_id}/revoke", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 200
    users = httpx.get(f"{console.scim}/Users", headers=console.scim_headers(victim), timeout=10)
    assert users.status_code == 401


def test_logout_ends_the_session_on_the_server(console: Console) -> None:
    with console.signed_in() as client:
        cookie = client.cookies["provisor_console"]
        page = client.get("/console/")
        assert page.status_code == 200
        assert client.post("/console/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
    replay = httpx.get(f"{console.root}/console/", cookies={"provisor_console": cookie}, timeout=10)
    assert replay.status_code == 303 and replay.headers["location"] == "/console/login"


def test_revoking_the_admin_token_ends_its_sessions(console: Console) -> None:
    admin = mint_token(console.database_url, None, kind="admin", name="short-lived-admin")
    with httpx.Client(base_url=console.root, timeout=10) as client:
        assert client.post("/console/login", data={"token": admin}).status_code == 303
        with console.signed_in() as operator:
            page = operator.get("/console/tokens").text
            token_id = page.split("short-lived-admin")[0].rsplit('data-token="', 1)[1].split('"')[0]
            operator.post(f"/console/tokens/{token_id}/revoke", data={"csrf": csrf_of(page)})
        assert client.get("/console/", follow_redirects=False).status_code == 303


def test_markup_in_user_attributes_stays_text(console: Console) -> None:
    created = []
    for i, payload in enumerate(XSS):
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"xss{i}-{uuid.uuid4().hex[:6]}{payload}",
            "displayName": payload,
        }
        response = httpx.post(f"{console.scim}/Users", json=body, headers=console.scim_headers(), timeout=10)
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    with console.signed_in() as client:
        pages = [
            f"/console/users?tenant={console.tenant}",
            *[f"/console/users/{console.tenant}/{rid}" for rid in created],
            f"/console/events?tenant={console.tenant}",
            f"/console/requests?tenant={console.tenant}",
            "/console/",
        ]
        for path in pages:
            html = client.get(path).text
            for payload in XSS:
                assert payload not in html, f"{path} shows raw markup"
        detail = client.get(f"/console/users/{console.tenant}/{created[0]}").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
