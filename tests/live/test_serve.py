"""A real `provisor serve` process: smoke test, and uniqueness under concurrency across workers."""

from __future__ import annotations

import asyncio

import httpx

from tests.live.server import live_server
from tests.scim_client import PATCH_OP

#: These bursts (up to 50 requests at once) test correctness under concurrency, not overload:
#: admission control (docs/operations.md, "Overload") would answer part of them 503.
NO_CAP = {"PROVISOR_MAX_INFLIGHT": "0"}


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

    with live_server(database_url, tenant_id, workers=2, env=NO_CAP) as server:
        statuses = asyncio.run(fire(server.base_url, server.headers))
        assert sorted(statuses) == [201] + [409] * 49, statuses
        listed = httpx.get(
            f"{server.base_url}/Users",
            params={"filter": 'userName eq "race.user@example.com"'},
            headers=server.headers,
        ).json()
        assert listed["totalResults"] == 1


def test_concurrent_patches_of_one_user_across_two_workers_lose_nothing(
    database_url: str, tenant_id: str
) -> None:
    """30 concurrent PATCHes each add one email to the same user, through 2 workers. Every one must
    land: on PostgreSQL a PATCH reads without a lock and writes only if the version is unchanged,
    reading again when another write got in first; on SQLite writers queue."""
    count = 30

    async def fire(base: str, headers: dict[str, str], uid: str) -> list[int]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as client:
            ops = [{"op": "add", "path": "emails", "value": [{"value": f"e{i}@x.org"}]} for i in range(count)]
            responses = await asyncio.gather(
                *(
                    client.patch(f"/Users/{uid}", json={"schemas": [PATCH_OP], "Operations": [op]})
                    for op in ops
                )
            )
            return [r.status_code for r in responses]

    with live_server(database_url, tenant_id, workers=2, env=NO_CAP) as server:
        created = httpx.post(
            f"{server.base_url}/Users", json={"userName": "busy@example.com"}, headers=server.headers
        )
        uid = created.json()["id"]
        statuses = asyncio.run(fire(server.base_url, server.headers, uid))
        assert statuses == [200] * count, statuses
        final = httpx.get(f"{server.base_url}/Users/{uid}", headers=server.headers)
        body = final.json()
        assert sorted(e["value"] for e in body["emails"]) == sorted(f"e{i}@x.org" for i in range(count))
        assert final.headers["etag"] == f'W/"{count + 1}"'
        found = httpx.get(
            f"{server.base_url}/Users",
            params={"filter": 'emails.value eq "e7@x.org"'},
            headers=server.headers,
        ).json()
        assert [r["id"] for r in found["Resources"]] == [uid]


def test_concurrent_member_pushes_to_one_group_across_two_workers_all_land(
    database_url: str, tenant_id: str
) -> None:
    """30 concurrent PATCHes each add one member to the same group, through 2 workers: one
    statement each (PostgreSQL) or one queued call (SQLite); every one lands, one version each."""
    count = 30
    with live_server(database_url, tenant_id, workers=2, env=NO_CAP) as server:
        with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as client:
            users = [
                client.post("/Users", json={"userName": f"p{i}@x.org"}).json()["id"] for i in range(count)
            ]
            group = client.post("/Groups", json={"displayName": "pushed"}).json()["id"]

        async def fire() -> list[int]:
            limits = httpx.Limits(max_connections=count)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=server.headers, timeout=30, limits=limits
            ) as client:
                bodies = [
                    {
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": u}]}],
                    }
                    for u in users
                ]
                responses = await asyncio.gather(*(client.patch(f"/Groups/{group}", json=b) for b in bodies))
                return [r.status_code for r in responses]

        assert asyncio.run(fire()) == [204] * count
        final = httpx.get(f"{server.base_url}/Groups/{group}", headers=server.headers)
        assert sorted(m["value"] for m in final.json()["members"]) == sorted(users)
        assert final.headers["etag"] == f'W/"{count + 1}"'


def test_concurrent_reads_across_two_workers_each_get_their_own_user(
    database_url: str, tenant_id: str
) -> None:
    """40 GETs by id and 40 `userName eq` lookups at once, some of them for ids that do not exist:
    on PostgreSQL the reads of one pass of a worker's loop go to the database as one batch
    (storage/coalesce.py), and each request must still get its own user, ETag and Location, or 404."""
    count = 20

    async def fire(base: str, headers: dict[str, str], users: dict[str, str]) -> None:
        limits = httpx.Limits(max_connections=80)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as client:
            ids = [*users, *(f"missing-{k}" for k in range(count))]
            names = [*users.values(), *(f"nobody{k}@example.com" for k in range(count))]
            got = await asyncio.gather(
                *(client.get(f"/Users/{uid}") for uid in ids),
                *(client.get("/Users", params={"filter": f'userName eq "{n}"'}) for n in names),
            )
        by_id, by_name = got[: len(ids)], got[len(ids) :]
        for uid, response in zip(ids, by_id, strict=True):
            if uid in users:
                assert response.status_code == 200, response.text
                assert response.json()["id"] == uid and response.json()["userName"] == users[uid]
                assert response.headers["etag"] == 'W/"1"'
                assert response.headers["location"] == f"{base}/Users/{uid}"
            else:
                assert response.status_code == 404, response.text
        for name, response in zip(names, by_name, strict=True):
            assert response.status_code == 200, response.text
            found = [(r["id"], r["userName"]) for r in response.json()["Resources"]]
            expected = [(uid, n) for uid, n in users.items() if n == name]
            assert found == expected

    with live_server(database_url, tenant_id, workers=2, env=NO_CAP) as server:
        users: dict[str, str] = {}
        for k in range(count):
            name = f"reader{k}@example.com"
            created = httpx.post(f"{server.base_url}/Users", json={"userName": name}, headers=server.headers)
            assert created.status_code == 201, created.text
            users[created.json()["id"]] = name
        asyncio.run(fire(server.base_url, server.headers, users))
