"""The tenant's delete policy (docs/delete-policy.md): `hard` removes at once; `tombstone` keeps a
deleted resource out of SCIM for `tombstone_days`, restores its id on a matching POST, then purges it."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from provisor.clock import now
from provisor.events.model import Event, parse_ops
from provisor.events.webhooks import set_claims
from provisor.storage.engine import create_engine
from provisor.storage.tables import events, tombstones
from provisor.storage.tombstones import purge_expired
from provisor.storage.transactions import read_transaction, write_transaction
from provisor.tenant_settings import parse_assignments
from tests.live.server import free_port, live_server
from tests.scim_client import GROUP_URN, USER_URN, Scim, assert_error, mint_token, run_db


def _events(scim: Scim) -> list[tuple[str, str, str, int | None, Any]]:
    return _events_of(scim.database_url, scim.tenant_id)


def _events_of(database_url: str, tenant_id: str) -> list[tuple[str, str, str, int | None, Any]]:
    """(op, resource type, resource id, version, payload) of the tenant's events, in order."""

    async def work(engine: Any) -> list[tuple[str, str, str, int | None, Any]]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(
                select(
                    events.c.op,
                    events.c.resource_type,
                    events.c.resource_id,
                    events.c.version,
                    events.c.payload,
                )
                .where(events.c.tenant_id == tenant_id)
                .order_by(events.c.seq)
            )
            return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    result: list[tuple[str, str, str, int | None, Any]] = run_db(database_url, work)
    return result


def _tombstone_ids(scim: Scim) -> list[str]:
    async def work(engine: Any) -> list[str]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(select(tombstones.c.id).where(tombstones.c.tenant_id == scim.tenant_id))
            return [r[0] for r in rows]

    result: list[str] = run_db(scim.database_url, work)
    return result


def _age_tombstones(scim: Scim) -> None:
    """Make the tenant's tombstones' retention end now (as if `tombstone_days` had passed)."""

    async def work(engine: Any) -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(
                update(tombstones).where(tombstones.c.tenant_id == scim.tenant_id).values(purge_after=now())
            )

    run_db(scim.database_url, work)


def _purge(scim: Scim, batch: int = 200) -> int:
    async def work(engine: Any) -> int:
        return await purge_expired(engine, batch=batch)

    result: int = run_db(scim.database_url, work)
    return result


def _user(user_name: str, **attrs: Any) -> dict[str, Any]:
    return {"schemas": [USER_URN], "userName": user_name, **attrs}


def _gone(scim: Scim, kind: str, resource_id: str) -> None:
    """404 for every operation on the resource, as after a hard delete."""
    path = f"/{kind}/{resource_id}"
    assert_error(scim.get(path), 404)
    body = _user("x") if kind == "Users" else {"schemas": [GROUP_URN], "displayName": "x"}
    assert_error(scim.put(path, body), 404)
    assert_error(scim.patch_ops(path, {"op": "replace", "path": "displayName", "value": "y"}), 404)
    assert_error(scim.delete(path), 404)


def test_hard_is_the_default_and_forgets_the_id(scim: Scim) -> None:
    first = scim.create_user("ada", externalId="ext-ada")
    assert scim.delete(f"/Users/{first['id']}").status_code == 204
    _gone(scim, "Users", first["id"])
    assert _tombstone_ids(scim) == []
    again = scim.create_user("ada", externalId="ext-ada")
    assert again["id"] != first["id"] and again["meta"]["version"] == 'W/"1"'
    ops = [(op, rid) for op, _, rid, _, _ in _events(scim)]
    assert ops == [("created", first["id"]), ("deleted", first["id"]), ("created", again["id"])]
    assert _events(scim)[1][4] is None


def test_tombstone_hides_the_resource_everywhere(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone", tombstone_days=30)
    ada = scim.create_user("ada", externalId="ext-ada", displayName="Ada L")
    bob = scim.create_user("bob")
    group = scim.create_group("eng", members=[ada["id"], bob["id"]])
    assert scim.delete(f"/Users/{ada['id']}").status_code == 204
    _gone(scim, "Users", ada["id"])
    assert _tombstone_ids(scim) == [ada["id"]]

    listed = scim.get("/Users").json()
    assert [r["id"] for r in listed["Resources"]] == [bob["id"]] and listed["totalResults"] == 1
    for flt in ('userName eq "ada"', 'externalId eq "ext-ada"', 'displayName sw "Ada"', "userName pr"):
        found = scim.get("/Users", params={"filter": flt}).json()
        assert ada["id"] not in [r["id"] for r in found["Resources"]], flt
    searched = scim.post("/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})
    assert ada["id"] not in [r["id"] for r in searched.json()["Resources"]]

    # Its memberships went as with a hard delete, with member_removed events.
    members = scim.get(f"/Groups/{group['id']}").json()["members"]
    assert [m["value"] for m in members] == [bob["id"]]
    assert ("member_removed", group["id"], {"members": [ada["id"]]}) in [
        (op, rid, payload) for op, _, rid, _, payload in _events(scim)
    ]
    # Not resolvable as a member, by PATCH or by a Bulk reference.
    add = scim.patch_ops(
        f"/Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": ada["id"]}]}
    )
    assert add.status_code == 400, add.text
    bulk = scim.post(
        "/Bulk",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "DELETE", "path": f"/Users/{ada['id']}"}],
        },
    )
    assert bulk.json()["Operations"][0]["status"] == "404"

    # The deleted event says it is a tombstone and until when it is kept.
    deleted = [e for e in _events(scim) if e[0] == "deleted"]
    assert deleted[0][2] == ada["id"] and deleted[0][3] == ada_version(ada)
    assert deleted[0][4]["tombstone"] is True and deleted[0][4]["purgeAfter"] > now()


def ada_version(resource: dict[str, Any]) -> int:
    return int(resource["meta"]["version"].removeprefix('W/"').removesuffix('"'))


def test_a_tombstoned_name_is_free_for_another_account(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone")
    ada = scim.create_user("ada", externalId="ext-1")
    assert scim.delete(f"/Users/{ada['id']}").status_code == 204
    other = scim.create_user("ADA", externalId="ext-2")  # another account (another externalId)
    assert other["id"] != ada["id"]
    assert scim.get(f"/Users/{other['id']}").status_code == 200
    eng = scim.create_group("eng", externalId="g-1")
    assert scim.delete(f"/Groups/{eng['id']}").status_code == 204
    _gone(scim, "Groups", eng["id"])
    assert scim.create_group("eng", externalId="g-2")["id"] != eng["id"]


def test_post_with_the_same_external_id_restores_the_id(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone", tombstone_days=7)
    ada = scim.create_user("ada", externalId="ext-ada", title="Engineer")
    scim.patch_ops(f"/Users/{ada['id']}", {"op": "replace", "path": "title", "value": "Lead"})
    group = scim.create_group("eng", members=[ada["id"]])
    assert scim.delete(f"/Users/{ada['id']}").status_code == 204

    response = scim.post("/Users", _user("ada.lovelace", externalId="ext-ada", nickName="al"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == ada["id"]
    assert response.headers["location"].endswith(f"/Users/{ada['id']}")
    assert body["meta"]["location"] == response.headers["location"]
    # Version 1 created, 2 patched, deleted at 2: restored as 3.
    assert body["meta"]["version"] == 'W/"3"' and response.headers["etag"] == 'W/"3"'
    assert body["meta"]["created"] == ada["meta"]["created"]
    assert body["userName"] == "ada.lovelace" and body["nickName"] == "al" and "title" not in body  # new body
    assert _tombstone_ids(scim) == []
    got = scim.get(f"/Users/{ada['id']}").json()
    assert got["userName"] == "ada.lovelace" and "groups" not in got  # memberships are not re-granted

    restored = [e for e in _events(scim) if e[0] == "restored"]
    assert len(restored) == 1
    _, rtype, rid, version, payload = restored[0]
    assert (rtype, rid, version) == ("User", ada["id"], 3)
    assert payload["userName"] == "ada.lovelace" and payload["previousGroups"] == [group["id"]]
    assert scim.get("/Users", params={"filter": 'externalId eq "ext-ada"'}).json()["totalResults"] == 1
    # The old userName was freed by the delete and stays free.
    assert scim.create_user("ada")["id"] != ada["id"]


def test_post_with_the_same_user_name_and_no_external_id_restores(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone")
    ada = scim.create_user("Ada@Example.com")
    assert scim.delete(f"/Users/{ada['id']}").status_code == 204
    response = scim.post("/Users", _user("ada@example.com", active=False))
    assert response.status_code == 201 and response.json()["id"] == ada["id"]
    assert response.json()["meta"]["version"] == 'W/"2"' and response.json()["active"] is False
    # A group restores by its displayName the same way.
    eng = scim.create_group("eng")
    assert scim.delete(f"/Groups/{eng['id']}").status_code == 204
    back = scim.post(
        "/Groups", {"schemas": [GROUP_URN], "displayName": "Eng", "members": [{"value": ada["id"]}]}
    )
    assert back.status_code == 201 and back.json()["id"] == eng["id"]
    assert [m["value"] for m in scim.get(f"/Groups/{eng['id']}").json()["members"]] == [ada["id"]]
    last = [(op, rid, payload) for op, _, rid, _, payload in _events(scim)][-2:]
    assert [(op, rid) for op, rid, _ in last] == [("restored", eng["id"]), ("member_added", eng["id"])]
    assert last[1][2] == {"members": [ada["id"]]}


def test_a_different_external_id_does_not_restore(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone")
    ada = scim.create_user("ada", externalId="ext-1")
    assert scim.delete(f"/Users/{ada['id']}").status_code == 204
    assert scim.create_user("ada", externalId="ext-other")["id"] != ada["id"]
    assert _tombstone_ids(scim) == [ada["id"]]


def test_a_restore_that_clashes_writes_nothing(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone")
    ada = scim.create_user("ada", externalId="ext-ada")
    assert scim.delete(f"/Users/{ada['id']}").status_code == 204
    scim.create_user("taken")
    before = _events(scim)
    assert_error(scim.post("/Users", _user("taken", externalId="ext-ada")), 409, "uniqueness")
    assert _events(scim) == before and _tombstone_ids(scim) == [ada["id"]]


def test_bulk_post_restores_too(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone")
    ids = [scim.create_user(f"u{i}", externalId=f"e{i}")["id"] for i in range(3)]
    for rid in ids:
        assert scim.delete(f"/Users/{rid}").status_code == 204
    bulk = scim.post(
        "/Bulk",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": f"b{i}",
                    "data": _user(f"u{i}", externalId=f"e{i}"),
                }
                for i in range(3)
            ],
        },
    ).json()
    assert [op["status"] for op in bulk["Operations"]] == ["201"] * 3
    assert [op["location"].rsplit("/", 1)[1] for op in bulk["Operations"]] == ids


def test_after_the_retention_the_tombstone_is_purged(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone", tombstone_days=1)
    ids = [scim.create_user(f"p{i}", externalId=f"x{i}")["id"] for i in range(5)]
    for rid in ids:
        assert scim.delete(f"/Users/{rid}").status_code == 204
    assert _purge(scim) == 0  # within the retention: kept
    assert sorted(_tombstone_ids(scim)) == sorted(ids)
    _age_tombstones(scim)
    assert _purge(scim, batch=2) == 5  # in batches of 2
    assert _tombstone_ids(scim) == []
    purged = [(rid, version, payload) for op, _, rid, version, payload in _events(scim) if op == "purged"]
    assert sorted(rid for rid, _, _ in purged) == sorted(ids)
    assert all(version == 1 and payload is None for _, version, payload in purged)
    again = scim.create_user("p0", externalId="x0")
    assert again["id"] not in ids and again["meta"]["version"] == 'W/"1"'


def test_an_expired_tombstone_is_not_restored_even_before_its_purge(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone")
    ada = scim.create_user("ada", externalId="ext-ada")
    assert scim.delete(f"/Users/{ada['id']}").status_code == 204
    _age_tombstones(scim)
    assert scim.create_user("ada", externalId="ext-ada")["id"] != ada["id"]


def test_snapshot_and_export_skip_tombstones(scim: Scim) -> None:
    scim.settings(delete_policy="tombstone")
    ada, bob = scim.create_user("ada"), scim.create_user("bob")
    assert scim.delete(f"/Users/{ada['id']}").status_code == 204
    admin = mint_token(scim.database_url, None, kind="admin")
    response = scim.client.get(
        "/admin/v1/snapshot", params={"tenant": scim.tenant_id}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert response.status_code == 200
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert [doc["id"] for doc in lines[1:]] == [bob["id"]]


@pytest.mark.parametrize(
    ("pair", "problem"),
    [
        ("delete_policy=soft", "delete_policy: must be one of hard, tombstone"),
        ("tombstone_days=0", "tombstone_days: must be an integer >= 1"),
        ("tombstone_days=abc", "tombstone_days: must be an integer >= 1"),
        ("tombstone_days=3651", "tombstone_days: must be at most 3650"),
    ],
)
def test_settings_are_validated(pair: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_assignments([pair])
    assert parse_assignments(["delete_policy=tombstone", "tombstone_days=90"]) == {
        "delete_policy": "tombstone",
        "tombstone_days": 90,
    }


def test_over_a_real_server_restore_and_background_purge(database_url: str, tenant_id: str) -> None:
    """`provisor serve`: settings by the CLI as docs/delete-policy.md prints them; the serving
    process's background loop purges what expired (its first pass runs at start)."""
    mint_token(database_url, tenant_id)
    provisor = Path(sys.executable).with_name("provisor")
    subprocess.run(
        [str(provisor), "tenant", "set", tenant_id, "delete_policy=tombstone", "tombstone_days=30"],
        env={**os.environ, "PROVISOR_DATABASE_URL": database_url},
        check=True,
        capture_output=True,
    )
    with live_server(database_url, tenant_id) as server, httpx.Client(headers=server.headers) as http:
        ids = {}
        for name in ("kept", "expired"):
            made = http.post(f"{server.base_url}/Users", json=_user(name, externalId=f"ext-{name}"))
            assert made.status_code == 201
            ids[name] = made.json()["id"]
            assert http.delete(f"{server.base_url}/Users/{ids[name]}").status_code == 204
            assert http.get(f"{server.base_url}/Users/{ids[name]}").status_code == 404

    async def expire(engine: Any) -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(
                update(tombstones).where(tombstones.c.id == ids["expired"]).values(purge_after=now())
            )

    run_db(database_url, expire)
    with live_server(database_url, tenant_id) as server, httpx.Client(headers=server.headers) as http:
        deadline = time.monotonic() + 20
        while not any(op == "purged" for op, *_ in _events_of(database_url, tenant_id)):
            assert time.monotonic() < deadline, "the expired tombstone was not purged"
            time.sleep(0.1)
        kept = http.post(f"{server.base_url}/Users", json=_user("kept", externalId="ext-kept"))
        assert kept.status_code == 201 and kept.json()["id"] == ids["kept"]
        assert kept.headers["location"] == f"{server.base_url}/Users/{ids['kept']}"
        fresh = http.post(f"{server.base_url}/Users", json=_user("expired", externalId="ext-expired"))
        assert fresh.status_code == 201 and fresh.json()["id"] != ids["expired"]
        gone = http.post(f"{server.base_url}/Users", json=_user("gone", externalId="ext-gone")).json()["id"]
        assert http.delete(f"{server.base_url}/Users/{gone}").status_code == 204
        # The console's users page and `provisor export` skip the tombstone.
        root = server.base_url.removesuffix("/scim/v2")
        with httpx.Client(base_url=root) as console:
            admin = mint_token(database_url, None, kind="admin")
            assert console.post("/console/login", data={"token": admin}).status_code == 303
            page = console.get("/console/users", params={"tenant": tenant_id}).text
        listed = set(re.findall(r"/console/users/[^/]+/([0-9a-f-]{36})", page))
        assert listed == {ids["kept"], fresh.json()["id"]}
        exported = subprocess.run(
            [str(provisor), "export", "--tenant", tenant_id, "--database-url", database_url],
            check=True,
            capture_output=True,
        ).stdout.splitlines()
        assert {orjson.loads(line)["id"] for line in exported} == {ids["kept"], fresh.json()["id"]}
    ops = [(op, rid) for op, _, rid, _, _ in _events_of(database_url, tenant_id)]
    assert ops[-5:-2] == [
        ("purged", ids["expired"]),
        ("restored", ids["kept"]),
        ("created", fresh.json()["id"]),
    ]


def test_restored_and_purged_are_event_ops_with_set_uris() -> None:
    assert parse_ops("Restored,purged") == ["restored", "purged"]
    restored = Event(
        7, "acme", "2026-12-05T10:00:00.000000Z", "User", "u1", "restored", 3, None, {"id": "u1"}
    )
    claims = set_claims(restored, "aud")["events"]
    assert claims == {
        "urn:ietf:params:scim:event:prov:create:full": {"data": {"id": "u1"}, "version": 'W/"3"'}
    }
    purged = Event(8, "acme", "2026-12-05T10:00:00.000000Z", "User", "u1", "purged", 3, None, None)
    assert set_claims(purged, "aud")["events"] == {"urn:provisor:event:purged": {"version": 'W/"3"'}}


def test_the_worked_example_runs_as_printed(tmp_path: Path) -> None:
    """docs/delete-policy.md's shell blocks, in order, on a fresh SQLite directory (the port is
    swapped for a free one so parallel runs do not collide; nothing else changes)."""
    doc = (Path(__file__).parents[2] / "docs" / "delete-policy.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", doc, re.S)
    example = "\n".join(blocks[1:])  # the first block is the one-line setting, repeated in the example
    assert "provisor serve --port 8765 &" in example
    script = "set -e\n" + example.replace("8765", str(free_port())) + "\nkill %1\nwait\n"
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISOR_")}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env["PROVISOR_LOG_LEVEL"] = "warning"
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "204\n404\n" in out
    assert "HTTP/1.1 201 Created" in out and 'etag: W/"2"' in out
    location = re.search(r"location: \S+/Users/([0-9a-f-]{36})", out)
    assert location is not None
    rows = [line.split() for line in out.splitlines()]
    tail = [(row[4], row[5]) for row in rows if len(row) >= 6 and row[0].isdigit()]  # `events tail`
    assert tail == [(op, location.group(1)) for op in ("created", "deleted", "restored")]


def test_concurrent_purges_record_each_tombstone_once(scim: Scim) -> None:
    """Every serving process runs the purge loop: two at once must not both record a `purged`."""
    scim.settings(delete_policy="tombstone")
    ids = [scim.create_user(f"c{i}")["id"] for i in range(20)]
    for rid in ids:
        assert scim.delete(f"/Users/{rid}").status_code == 204
    _age_tombstones(scim)

    async def work(engine: Any) -> list[int]:
        other = create_engine(scim.database_url)
        try:
            counts = await asyncio.gather(purge_expired(engine, batch=3), purge_expired(other, batch=3))
        finally:
            await other.dispose()
        return list(counts)

    counts = run_db(scim.database_url, work)
    assert sum(counts) == 20
    purged = sorted(rid for op, _, rid, _, _ in _events(scim) if op == "purged")
    assert purged == sorted(ids) and _tombstone_ids(scim) == []
