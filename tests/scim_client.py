"""Test helpers: a SCIM client bound to one tenant, and direct database set-up helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from provisor.storage.auth_cache import auth_write
from provisor.storage.engine import create_engine
from provisor.storage.tables import attribute_index, resources, tenants
from provisor.storage.tenants import ensure_tenant
from provisor.storage.tokens import create_token
from provisor.storage.transactions import read_transaction, write_transaction

T = TypeVar("T")
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"


def run_db(url: str, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = create_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def mint_token(url: str, tenant_id: str | None, *, kind: str = "scim", name: str = "test") -> str:
    async def work(engine: AsyncEngine) -> str:
        async with write_transaction(engine) as conn:
            if tenant_id is not None:
                await ensure_tenant(conn, tenant_id)
            _, secret = await create_token(conn, tenant_id=tenant_id, name=name, kind=kind)
        return secret

    return run_db(url, work)


def orphaned_index_rows(url: str, tenant_id: str) -> list[tuple[str, str]]:
    """`(attr, resource_id)` of the tenant's index rows whose resource is gone.

    `attribute_index` has no foreign key (migration 0008): the code that writes a resource writes
    and deletes its index rows. An orphan would be a silent fault (a deleted user's userName could
    never be used again), so API tests check for them after every test (tests/conftest.py).
    """
    ai = attribute_index.c
    query = select(ai.attr, ai.resource_id).where(
        ai.tenant_id == tenant_id,
        ~exists().where(resources.c.tenant_id == ai.tenant_id, resources.c.id == ai.resource_id),
    )

    async def work(engine: AsyncEngine) -> list[tuple[str, str]]:
        async with read_transaction(engine) as conn:
            return [(str(a), str(r)) for a, r in (await conn.execute(query)).all()]

    return run_db(url, work)


def set_tenant_settings(url: str, tenant_id: str, **settings: Any) -> None:
    """As Provisor's own tools change tenants: every worker's token cache follows on return."""

    async def work(engine: AsyncEngine) -> None:
        async with auth_write(engine) as conn:
            await ensure_tenant(conn, tenant_id)
            await conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(settings=settings))

    run_db(url, work)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


#: Longest a test waits for an app's token cache to hear of a change made elsewhere.
INVALIDATION_TIMEOUT_SECONDS = 5.0


def changed_elsewhere(client: TestClient, change: Callable[[], None]) -> float:
    """Run `change` (a write to `tokens`/`tenants` on another connection), then wait until the app
    behind `client` has emptied its token cache, and return how long that took.

    On PostgreSQL the cache hears of such changes by LISTEN/NOTIFY, which arrives a little after the
    writer's commit (docs/security.md); a test that asserts the change's effect must not race it.
    With the cache off (not yet proven) every request reads the database, and on SQLite the next
    request reads the signal file the change's writer rewrote before returning: no wait."""
    cache = client.app.state.provisor.auth.cache  # type: ignore[attr-defined]
    generation = cache.generation
    began = time.monotonic()
    change()
    wait_for(
        lambda: not cache.enabled or cache.signal is not None or cache.generation != generation,
        INVALIDATION_TIMEOUT_SECONDS,
    )
    return time.monotonic() - began


class Scim:
    """Requests against `/scim/v2` with one tenant's bearer token."""

    def __init__(self, client: TestClient, token: str, url: str, tenant_id: str) -> None:
        self.client = client
        self.token = token
        self.database_url = url
        self.tenant_id = tenant_id

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        if "json" in kwargs and "content-type" not in {k.lower() for k in headers}:
            headers["Content-Type"] = "application/scim+json"
        return self.client.request(method, "/scim/v2" + path, headers=headers, **kwargs)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def patch_ops(self, path: str, *ops: dict[str, Any], **kw: Any) -> httpx.Response:
        return self.patch(path, {"schemas": [PATCH_OP], "Operations": list(ops)}, **kw)

    def create_user(self, user_name: str, **attrs: Any) -> dict[str, Any]:
        response = self.post("/Users", {"schemas": [USER_URN], "userName": user_name, **attrs})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def create_group(
        self, display_name: str, members: list[str] | None = None, **attrs: Any
    ) -> dict[str, Any]:
        body_in: dict[str, Any] = {"schemas": [GROUP_URN], "displayName": display_name, **attrs}
        if members is not None:
            body_in["members"] = [{"value": m} for m in members]
        response = self.post("/Groups", body_in)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def settings(self, **settings: Any) -> None:
        changed_elsewhere(
            self.client, lambda: set_tenant_settings(self.database_url, self.tenant_id, **settings)
        )


def assert_error(response: httpx.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR_URN]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body


def whole_feed(get: Callable[[dict[str, Any]], Any], **params: Any) -> list[dict[str, Any]]:
    """Every event of the admin feed matching `params`, following `next` from the start. A filtered
    page examines one window of seqs (storage/event_log.py), so in a database shared with other
    tests' events a first page can be empty while later events match."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        response = get({**params, "after": after})
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["events"]
        if body["next"] == after:
            return found
        after = body["next"]
