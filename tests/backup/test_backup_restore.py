"""`provisor backup` while writers go on, then `provisor restore` into a new database, on SQLite and
PostgreSQL: the restore is the deployment as of one instant (every resource with exactly the events
that made it, memberships as the events left them, tokens and webhooks), and it serves."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.tables import events, group_members, resources, tokens, webhooks
from provisor.storage.transactions import read_transaction
from tests.conftest import _admin_url, _create_database, _drop_database, _run
from tests.live.server import live_server
from tests.scim_client import run_db

PROVISOR = str(Path(sys.executable).with_name("provisor"))
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def provisor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROVISOR, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def empty_target(fresh_database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database URL of the same kind as `fresh_database_url`, with nothing in it yet."""
    if fresh_database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    admin = _admin_url()
    name = f"provisor_restore_{uuid.uuid4().hex[:12]}"
    _run(_create_database(admin, name))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        _run(_drop_database(admin, name))


def _state(url: str, tenant: str) -> dict[str, Any]:
    async def work(engine: AsyncEngine) -> dict[str, Any]:
        async with read_transaction(engine) as conn:
            res = (
                await conn.execute(
                    select(resources.c.id, resources.c.resource_type, resources.c.version).where(
                        resources.c.tenant_id == tenant
                    )
                )
            ).all()
            evs = (
                await conn.execute(
                    select(events.c.resource_id, events.c.op, events.c.version, events.c.payload)
                    .where(events.c.tenant_id == tenant)
                    .order_by(events.c.seq)
                )
            ).all()
            members = (
                await conn.execute(
                    select(group_members.c.group_id, group_members.c.member_id).where(
                        group_members.c.tenant_id == tenant
                    )
                )
            ).all()
            token_hashes = (await conn.execute(select(tokens.c.id).where(tokens.c.tenant_id == tenant))).all()
            hooks = (await conn.execute(select(webhooks.c.id))).all()
        return {
            "resources": {r.id: (r.resource_type, r.version) for r in res},
            "events": evs,
            "members": {(m.group_id, m.member_id) for m in members},
            "tokens": len(token_hashes),
            "webhooks": len(hooks),
        }

    return run_db(url, work)


def _replay(evs: list[Any]) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """What the events say the state is: each live resource's version as of its last versioned event
    (member events carry none: a group's version also counts membership changes), and the memberships."""
    versions: dict[str, int] = {}
    members: set[tuple[str, str]] = set()
    for resource_id, op, version, payload in evs:
        if op == "deleted":
            versions.pop(resource_id, None)
            members = {m for m in members if resource_id not in m}
        elif op == "member_added":
            members |= {(resource_id, m) for m in payload["members"]}
        elif op == "member_removed":
            members -= {(resource_id, m) for m in payload["members"]}
        elif version is not None:
            versions[resource_id] = version
    return versions, members


def test_backup_during_writes_restores_one_instant_that_serves(
    fresh_database_url: str, empty_target: str, tmp_path: Path
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    hook = provisor("webhook", "add", "http://127.0.0.1:9/unreachable", "--database-url", fresh_database_url)
    assert hook.returncode == 0, hook.stderr
    with live_server(fresh_database_url, tenant) as server:
        client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        group = client.post("/Groups", json={"displayName": "staff", "members": []}).json()["id"]
        stop = threading.Event()
        acknowledged: list[str] = []

        def write() -> None:
            with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as own:
                while not stop.is_set():
                    made = own.post("/Users", json={"schemas": [USER], "userName": f"u-{uuid.uuid4().hex}"})
                    assert made.status_code == 201, made.text
                    uid = made.json()["id"]
                    own.patch(
                        f"/Users/{uid}",
                        json={
                            "schemas": [PATCH],
                            "Operations": [{"op": "replace", "value": {"active": False}}],
                        },
                    ).raise_for_status()
                    own.patch(
                        f"/Groups/{group}",
                        json={
                            "schemas": [PATCH],
                            "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
                        },
                    ).raise_for_status()
                    if len(acknowledged) % 3 == 0:
                        own.delete(f"/Users/{uid}").raise_for_status()
                    acknowledged.append(uid)

        writers = [threading.Thread(target=write) for _ in range(3)]
        for thread in writers:
            thread.start()
        try:
            while len(acknowledged) < 15:
                stop.wait(0.05)
            backup_file = tmp_path / "provisor.backup"
            made = provisor("backup", str(backup_file), "--database-url", fresh_database_url)
            assert made.returncode == 0, made.stderr
            during = len(acknowledged)
            while len(acknowledged) < during + 15:  # writes went on during and after the backup
                stop.wait(0.05)
        finally:
            stop.set()
            for thread in writers:
                thread.join()
        client.close()

    restored = provisor("restore", str(backup_file), "--database-url", empty_target)
    assert restored.returncode == 0, restored.stderr
    source, copy = _state(fresh_database_url, tenant), _state(empty_target, tenant)

    versions, members = _replay(copy["events"])
    assert copy["resources"].keys() == versions.keys()
    users = {rid: version for rid, (kind, version) in copy["resources"].items() if kind == "User"}
    assert users == {rid: v for rid, v in versions.items() if rid in users}
    assert copy["members"] == members
    assert 0 < len(copy["events"]) < len(source["events"]), "the backup is an instant before the end"
    # The instant is one of commits, not of sequence numbers: PostgreSQL gives an event its seq when
    # it is inserted, so a transaction that took a smaller seq may commit after the backup's instant
    # (it is then absent from the copy while a larger seq is present). The copy is the source's
    # history in the same order, less only such writes.
    later = iter(source["events"])
    assert all(event in later for event in copy["events"]), "the same history, in the same order"
    assert copy["tokens"] == source["tokens"] == 1
    assert copy["webhooks"] == source["webhooks"] == 1

    with live_server(empty_target, tenant) as server:  # the same token still works on the restore
        listed = httpx.get(f"{server.base_url}/Users", headers=server.headers, params={"count": 0})
        assert listed.status_code == 200
        assert listed.json()["totalResults"] == len(users)


def test_restore_refuses_to_overwrite_without_force(fresh_database_url: str, tmp_path: Path) -> None:
    backup_file = tmp_path / "b.backup"
    assert provisor("backup", str(backup_file), "--database-url", fresh_database_url).returncode == 0
    refused = provisor("restore", str(backup_file), "--database-url", fresh_database_url)
    assert refused.returncode == 1
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    forced = provisor("restore", str(backup_file), "--database-url", fresh_database_url, "--force")
    assert forced.returncode == 0, forced.stderr


def test_restore_names_a_file_of_the_wrong_kind(tmp_path: Path) -> None:
    junk = tmp_path / "junk.backup"
    junk.write_text("not a backup")
    refused = provisor("restore", str(junk), "--database-url", f"sqlite:///{tmp_path / 'x.db'}")
    assert refused.returncode == 1
    assert "not a Provisor backup" in refused.stderr
    assert not (tmp_path / "x.db").exists()
