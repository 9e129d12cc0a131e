"""Provisor inside a host application, and behind a proxy that strips a prefix (`root_path`).

The SCIM API is routed by http/app.py's ScimRoute rather than Starlette's router; it must see the
same scope a `Mount` would give it, so that paths resolve and `meta.location` / `Location` carry
the prefix the client used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from tests.scim_client import USER_URN, mint_token


def test_mounted_in_a_host_app_under_a_prefix(database_url: str, tenant_id: str) -> None:
    token = mint_token(database_url, tenant_id)
    provisor = create_app(Settings(database_url=database_url, webhooks_enabled=False))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with provisor.router.lifespan_context(provisor):  # a mounted app's lifespan is the host's job
            yield

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("host")

    host = Starlette(routes=[Route("/", home), Mount("/idp", app=provisor)], lifespan=lifespan)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(host, base_url="http://example.test") as client:
        assert client.get("/").text == "host"
        assert client.get("/idp/healthz").json() == {"status": "ok"}
        created = client.post(
            "/idp/scim/v2/Users", headers=headers, json={"schemas": [USER_URN], "userName": "mounted"}
        )
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        location = f"http://example.test/idp/scim/v2/Users/{uid}"
        assert created.headers["location"] == created.json()["meta"]["location"] == location
        assert client.get(f"/idp/scim/v2/users/{uid}", headers=headers).json()["userName"] == "mounted"
        assert client.get("/idp/scim/v2/ServiceProviderConfig", headers=headers).status_code == 200
        assert client.get("/scim/v2/Users", headers=headers).status_code == 404  # the host's, not ours


def test_served_with_a_root_path(database_url: str, tenant_id: str) -> None:
    """`uvicorn --root-path /proxy` (behind a proxy that forwards /proxy/...): the scope's path then
    starts with the root path, as the ASGI spec has it."""
    token = mint_token(database_url, tenant_id)
    app = create_app(Settings(database_url=database_url, webhooks_enabled=False))
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app, base_url="http://example.test", root_path="/proxy") as client:
        created = client.post(
            "/proxy/scim/v2/Users", headers=headers, json={"schemas": [USER_URN], "userName": "proxied"}
        )
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        assert created.json()["meta"]["location"] == f"http://example.test/proxy/scim/v2/Users/{uid}"
        assert client.get(f"/proxy/scim/v2/Users/{uid}", headers=headers).json()["id"] == uid
        unknown = client.get("/proxy/scim/v2/Nothing", headers=headers)
        assert unknown.status_code == 404 and unknown.json()["status"] == "404"
        assert client.get("/proxy/healthz").status_code == 200
