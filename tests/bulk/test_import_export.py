"""`provisor import` / `provisor export` and adoption of imported accounts, on both databases."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.cli import main
from provisor.storage.tables import events, resources
from provisor.storage.transactions import read_transaction
from tests.scim_client import GROUP_URN, USER_URN, Scim, assert_error, run_db


def cli(scim: Scim, *args: str, tenant: str | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(
        main, [*args, "--tenant", tenant or scim.tenant_id, "--database-url", scim.database_url]
    )


def write_jsonl(path: Path, docs: list[Any]) -> Path:
    path.write_bytes(b"".join((d if isinstance(d, bytes) else orjson.dumps(d)) + b"\n" for d in docs))
    return path


def user_doc(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": [USER_URN],
        "id": str(uuid.uuid4()),
        "userName": f"user{i}@example.com",
        "externalId": f"ext-{i}",
        "name": {"givenName": "User", "familyName": str(i)},
        "emails": [{"value": f"user{i}@example.com", "type": "work", "primary": True}],
        **extra,
    }


def without_meta(jsonl: bytes) -> list[dict[str, Any]]:
    docs = [orjson.loads(line) for line in jsonl.splitlines() if line.strip()]
    for doc in docs:
        doc.pop("meta", None)
    return docs


def managed_flags(scim: Scim) -> dict[str, bool]:
    async def work(engine: AsyncEngine) -> dict[str, bool]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(
                select(resources.c.id, resources.c.managed).where(resources.c.tenant_id == scim.tenant_id)
            )
            return {r[0]: bool(r[1]) for r in rows}

    return run_db(scim.database_url, work)


def event_ops(scim: Scim, resource_id: str) -> list[str]:
    async def work(engine: AsyncEngine) -> list[str]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(
                select(events.c.op)
                .where(events.c.tenant_id == scim.tenant_id, events.c.resource_id == resource_id)
                .order_by(events.c.seq)
            )
            return [r[0] for r in rows]

    return run_db(scim.database_url, work)


def test_import_10k_users_and_groups_then_export_round_trip(scim: Scim, tmp_path: Path) -> None:
    users = [user_doc(i) for i in range(10_000)]
    groups = [
        {
            "schemas": [GROUP_URN],
            "id": str(uuid.uuid4()),
            "displayName": f"Group {g}",
            "members": [{"value": u["id"]} for u in users[g * 100 : g * 100 + 50]],
        }
        for g in range(20)
    ]
    source = write_jsonl(tmp_path / "in.jsonl", [*users, *groups])
    start = time.perf_counter()
    result = cli(scim, "import", str(source))
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output + result.stderr
    assert "10020 were created" in result.stderr
    assert elapsed < 25, elapsed
    assert scim.get("/Users", params={"count": 0}).json()["totalResults"] == 10_000
    group = scim.get(f"/Groups/{groups[3]['id']}").json()
    assert {m["value"] for m in group["members"]} == {u["id"] for u in users[300:350]}
    exported = cli(scim, "export")
    assert exported.exit_code == 0, exported.stderr
    assert len(exported.stdout_bytes.splitlines()) == 10_020

    other = f"{scim.tenant_id}-copy"
    reimport = tmp_path / "export.jsonl"
    reimport.write_bytes(exported.stdout_bytes)
    assert cli(scim, "import", "--create-tenant", str(reimport), tenant=other).exit_code == 0
    again = cli(scim, "export", tenant=other)
    assert without_meta(again.stdout_bytes) == without_meta(exported.stdout_bytes)

    unchanged = cli(scim, "import", "--dry-run", str(reimport))
    assert unchanged.exit_code == 0
    assert "0 would be created, 0 would be updated, 10020 unchanged" in unchanged.stderr


def test_import_updates_by_external_id_and_dry_run_changes_nothing(scim: Scim, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [user_doc(1), user_doc(2)])
    assert cli(scim, "import", str(first)).exit_code == 0
    changed = user_doc(1, displayName="Changed")  # new id, same externalId: an update
    second = write_jsonl(tmp_path / "b.jsonl", [changed, user_doc(3)])
    dry = cli(scim, "import", "--dry-run", str(second))
    assert dry.exit_code == 0, dry.stderr
    assert "1 would be created, 1 would be updated, 0 unchanged" in dry.stderr
    listed = scim.get("/Users").json()
    assert listed["totalResults"] == 2
    assert all("displayName" not in u for u in listed["Resources"])
    real = cli(scim, "import", str(second))
    assert "1 were created, 1 were updated" in real.stderr
    found = scim.get("/Users", params={"filter": 'externalId eq "ext-1"'}).json()["Resources"]
    assert len(found) == 1 and found[0]["displayName"] == "Changed"


def test_bad_lines_are_reported_and_the_rest_imported(scim: Scim, tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            user_doc(1),
            b"{not json",
            {"schemas": [USER_URN], "name": {"givenName": "x"}},
            user_doc(1),
            user_doc(2),
        ],
    )
    result = cli(scim, "import", str(source))
    assert result.exit_code == 2
    assert "line 2" in result.stderr and "invalid JSON" in result.stderr
    assert "line 3" in result.stderr and "userName" in result.stderr
    assert "line 4" in result.stderr and "duplicate userName, first at line 1" in result.stderr
    assert scim.get("/Users").json()["totalResults"] == 2


def test_strict_refuses_the_whole_file(scim: Scim, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [user_doc(1), b"[]", user_doc(2)])
    result = cli(scim, "import", "--strict", str(source))
    assert result.exit_code == 1
    assert "line 2" in result.stderr and "nothing was written" in result.stderr
    assert scim.get("/Users").json()["totalResults"] == 0


def test_csv_import_with_mapping(scim: Scim, tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text(
        "email,first,last,enabled,dept\n"
        "ann@example.com,Ann,Lee,true,Sales\n"
        "bad-row@example.com,Bad,Row,true,\n"
        "ben@example.com,Ben,Ode,false,R&D\n",
        encoding="utf-8",
    )
    mapping = (
        "userName=email,emails.value=email,name.givenName=first,name.familyName=last,active=enabled,"
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department=dept"
    )
    result = cli(scim, "import", "--csv", "--type", "Users", "--map", mapping, str(source))
    assert result.exit_code == 0, result.stderr
    users = {u["userName"]: u for u in scim.get("/Users").json()["Resources"]}
    assert set(users) == {"ann@example.com", "bad-row@example.com", "ben@example.com"}
    ann = users["ann@example.com"]
    assert ann["name"] == {"givenName": "Ann", "familyName": "Lee"}
    assert ann["emails"][0]["value"] == "ann@example.com"
    assert ann["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"] == "Sales"
    assert users["ben@example.com"]["active"] is False


def test_post_adopts_an_imported_account(scim: Scim, tmp_path: Path) -> None:
    imported = user_doc(7, displayName="Old")
    assert cli(scim, "import", str(write_jsonl(tmp_path / "in.jsonl", [imported]))).exit_code == 0
    assert managed_flags(scim) == {imported["id"]: False}
    response = scim.post("/Users", {"schemas": [USER_URN], "userName": "USER7@example.com", "nickName": "n"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == imported["id"]
    assert body["userName"] == "USER7@example.com" and body["nickName"] == "n"
    assert "displayName" not in body and "name" not in body  # replaced as by PUT
    assert response.headers["location"].endswith(imported["id"])
    assert managed_flags(scim) == {imported["id"]: True}
    assert event_ops(scim, imported["id"]) == ["created", "adopted"]
    assert_error(
        scim.post("/Users", {"schemas": [USER_URN], "userName": "user7@example.com"}), 409, "uniqueness"
    )


def test_bulk_post_adopts_too(scim: Scim, tmp_path: Path) -> None:
    from tests.bulk.helpers import bulk, ok, post_user

    imported = user_doc(8)
    assert cli(scim, "import", str(write_jsonl(tmp_path / "in.jsonl", [imported]))).exit_code == 0
    results = ok(bulk(scim, post_user("a", "user8@example.com"), post_user("b", "fresh@example.com")))
    assert [r["status"] for r in results] == ["201", "201"]
    assert results[0]["location"].endswith(imported["id"])
