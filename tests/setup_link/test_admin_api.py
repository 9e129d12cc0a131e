"""`/admin/v1/setup-links` over real HTTP on both databases: create, list, revoke, and the refusals."""

from __future__ import annotations

import httpx

from tests.live.server import live_server
from tests.scim_client import mint_token
from tests.setup_link.helpers import root_of


def test_setup_links_over_the_admin_api(database_url: str, tenant_id: str) -> None:
    admin = {"Authorization": f"Bearer {mint_token(database_url, None, kind='admin')}"}
    with live_server(database_url, tenant_id) as server:
        root = root_of(server.base_url)
        api = f"{root}/admin/v1/setup-links"
        made = httpx.post(api, json={"tenant": tenant_id, "expires_in": "2h"}, headers=admin)
        assert made.status_code == 201, made.text
        link = made.json()
        assert link["tenant"] == tenant_id and link["state"] == "active" and link["revoked_at"] is None
        assert link["url"].startswith(f"{root}/setup/{link['id']}.")
        assert httpx.get(link["url"]).status_code == 200

        listed = httpx.get(api, params={"tenant": tenant_id}, headers=admin).json()["setup_links"]
        assert [row["id"] for row in listed] == [link["id"]]
        assert listed[0]["last_used"] is not None  # the page was opened
        assert "url" not in listed[0] and "secret_hash" not in listed[0]
        everyone = httpx.get(api, headers=admin).json()["setup_links"]
        assert link["id"] in {row["id"] for row in everyone}
        assert httpx.get(api, params={"tenant": f"{tenant_id}-none"}, headers=admin).json() == {
            "setup_links": []
        }

        assert httpx.delete(f"{api}/{link['id']}", headers=admin).status_code == 204
        assert httpx.get(link["url"]).status_code == 410
        assert httpx.delete(f"{api}/{link['id']}", headers=admin).status_code == 404
        revoked = httpx.get(api, params={"tenant": tenant_id}, headers=admin).json()["setup_links"][0]
        assert revoked["state"] == "revoked" and revoked["revoked_at"] is not None

        unknown = httpx.post(api, json={"tenant": "no-such-tenant"}, headers=admin)
        assert unknown.status_code == 400 and "no tenant no-such-tenant" in unknown.json()["detail"]
        for body in (b"{", b"[]", b'{"tenant": 5}'):
            assert httpx.post(api, content=body, headers=admin).status_code == 400
        for lifetime in ("0s", "91d", "soon"):
            bad = httpx.post(api, json={"tenant": tenant_id, "expires_in": lifetime}, headers=admin)
            assert bad.status_code == 400, lifetime
        # Only admin tokens: no token, or the tenant's SCIM token, is refused.
        assert httpx.get(api).status_code == 401
        scim = {"Authorization": f"Bearer {server.token}"}
        assert httpx.post(api, json={"tenant": tenant_id}, headers=scim).status_code in (401, 403)
        assert httpx.get(api, params={"tenant": tenant_id}, headers=admin).json()["setup_links"] == [revoked]
