"""Many requests at once through the whole app, as an IdP pushing in parallel sends them.

On PostgreSQL concurrent requests share round trips (storage/coalesce.py); these tests check that
every request still gets its own answer, that the batches really formed, and that conflicting
writes are decided as they would be one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from provisor.config import Settings
from provisor.http.app import create_app
from provisor.storage import resource_rows
from provisor.storage.direct import reader
from provisor.storage.postgres import resources as pg_resources
from tests.scim_client import PATCH_OP, USER_URN, mint_token, orphaned_index_rows


def with_app(
    database_url: str, tenant_id: str, work: Callable[[httpx.AsyncClient, Any], Coroutine[Any, Any, None]]
) -> None:
    token = mint_token(database_url, tenant_id)
    app = create_app(Settings(database_url=database_url, webhooks_enabled=False))

    async def main() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver/scim/v2", headers=headers
            ) as client:
                await work(client, app.state.provisor.engine)

    asyncio.run(main())
    assert orphaned_index_rows(database_url, tenant_id) == []


def user(name: str) -> dict[str, Any]:
    return {"schemas": [USER_URN], "userName": name, "displayName": name.upper(), "active": True}


def test_parallel_creates_reads_and_patches_each_get_their_own_answer(
    database_url: str, tenant_id: str
) -> None:
    async def work(client: httpx.AsyncClient, engine: Any) -> None:
        names = [f"p{k}@example.com" for k in range(12)] + ["p3@example.com", "P5@example.com"]
        created = await asyncio.gather(*(client.post("/Users", json=user(n)) for n in names))
        statuses = [r.status_code for r in created]
        # Of each pair sent at once (the second differing only in case) exactly one wins.
        for first, second in ((3, 12), (5, 13)):
            assert sorted([statuses[first], statuses[second]]) == [201, 409]
            loser = created[first] if statuses[first] == 409 else created[second]
            assert loser.json()["scimType"] == "uniqueness"
        assert statuses.count(201) == 12
        ids = {r.json()["userName"].lower(): r.json()["id"] for r in created if r.status_code == 201}

        got = await asyncio.gather(*(client.get(f"/Users/{ids[n]}") for n in names[:12]))
        assert [r.json()["userName"].lower() for r in got] == names[:12]

        found = await asyncio.gather(
            *(client.get("/Users", params={"filter": f'userName eq "{n.upper()}"'}) for n in names[:12])
        )
        assert [r.json()["Resources"][0]["id"] for r in found] == [ids[n] for n in names[:12]]

        patched = await asyncio.gather(
            *(
                client.patch(
                    f"/Users/{ids[n]}",
                    json={
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "replace", "path": "title", "value": f"title of {n}"}],
                    },
                )
                for n in names[:12]
            )
        )
        assert [(r.status_code, r.json()["title"], r.json()["meta"]["version"]) for r in patched] == [
            (200, f"title of {n}", 'W/"2"') for n in names[:12]
        ]
        if engine.dialect.name == "postgresql":
            for statement in (pg_resources.CREATE_CLAIMING, resource_rows.READ_WITH_GROUPS):
                calls, trips = reader(engine).batch_counts(statement)
                assert trips < calls, (statement, calls, trips)

    with_app(database_url, tenant_id, work)


def test_parallel_patches_of_one_user_all_land(database_url: str, tenant_id: str) -> None:
    """Eight PATCHes of one user read the same version; in a batch only the first can write over it,
    and the others take the locking path. Each adds its own email: all eight must be there."""

    async def work(client: httpx.AsyncClient, engine: Any) -> None:
        created = await client.post("/Users", json=user("busy@example.com"))
        uid = created.json()["id"]
        adds = [
            {"op": "add", "path": "emails", "value": [{"value": f"e{k}@example.com", "type": "other"}]}
            for k in range(8)
        ]
        answers = await asyncio.gather(
            *(client.patch(f"/Users/{uid}", json={"schemas": [PATCH_OP], "Operations": [op]}) for op in adds)
        )
        assert {r.status_code for r in answers} == {200}
        final = (await client.get(f"/Users/{uid}")).json()
        assert sorted(e["value"] for e in final["emails"]) == [f"e{k}@example.com" for k in range(8)]
        assert final["meta"]["version"] == 'W/"9"'
        versions = sorted(int(r.json()["meta"]["version"][3:-1]) for r in answers)
        assert versions == list(range(2, 10))

    with_app(database_url, tenant_id, work)
