"""A real `provisor serve` process: smoke test, and uniqueness under concurrency across workers."""

from __future__ import annotations

import asyncio

import httpx

from tests.live.server import live_server


def test_smoke_create_get_delete(database_url: str, tenant_id: str) -> None:
    with (
        live_server(database_url, tenant_id) as server,
        httpx.Client(base_url=server.base_url, headers=server.headers, timeout=10) as client,
    ):
        created = client.post("/Users", json={"userName": "smoke@example.com"})
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        assert created.headers["location"] == f"{server.base_url}/Users/{uid}"
        assert client.get(f"/Users/{uid}").json()["userName"] == "smoke@example.com"
        assert client.delete(f"/Users/{uid}").status_code == 204
        assert client.get(f"/Users/{uid}").status_code == 404


def test_concurrent_duplicate_creates_across_two_workers(database_url: str, tenant_id: str) -> None:
    """50 concurrent creates of one userName in different cases: exactly one 201, the rest 409."""
    names = ["race.user@example.com".upper() if i % 2 else "Race.User@example.com" for i in range(50)]

    async def fire(base: str, headers: dict[str, str]) -> list[int]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as client:
            responses = await asyncio.gather(*(client.post("/Users", json={"userName": n}) for n in names))
            return [r.status_code for r in responses]

    with live_server(database_url, tenant_id, workers=2) as server:
        statuses = asyncio.run(fire(server.base_url, server.headers))
        assert sorted(statuses) == [201] + [409] * 49, statuses
        listed = httpx.get(
            f"{server.base_url}/Users",
            params={"filter": 'userName eq "race.user@example.com"'},
            headers=server.headers,
        ).json()
        assert listed["totalResults"] == 1
