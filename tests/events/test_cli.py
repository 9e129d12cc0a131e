"""The real console script: `provisor webhook ...` and `provisor events ...` against the database."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import delete, insert, select

from provisor.storage import webhooks as store
from provisor.storage.tables import events, webhook_deliveries, webhooks
from provisor.storage.transactions import read_transaction, write_transaction
from tests.events.support import bearer, client, head, mint, run_db

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PROVISOR = str(Path(sys.executable).with_name("provisor"))


def cli(url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [PROVISOR, *args, "--database-url", url], capture_output=True, text=True, timeout=60, check=False
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def create_users(url: str, tenant: str, *names: str) -> list[str]:
    scim = mint(url, tenant)
    with client(url) as c:
        return [
            c.post("/scim/v2/Users", json={"schemas": [USER], "userName": n}, headers=bearer(scim)).json()[
                "id"
            ]
            for n in names
        ]


def test_webhook_add_list_dead_redrive_remove(database_url: str, tenant_id: str) -> None:
    url = "https://app.example.com/provisioning"
    cli(database_url, "tenant", "create", tenant_id)
    added = cli(
        database_url,
        "webhook",
        "add",
        url,
        "--secret",
        "top-secret",
        "--events",
        "created,deactivated",
        "--tenant",
        tenant_id,
        "--format",
        "set",
    )
    hook_id = added.stdout.strip().splitlines()[-1]
    try:

        async def stored(engine: Any) -> dict[str, Any] | None:
            async with read_transaction(engine) as conn:
                row = (
                    (await conn.execute(select(webhooks).where(webhooks.c.id == hook_id))).mappings().first()
                )
                return dict(row) if row is not None else None

        row = run_db(database_url, stored)
        assert row is not None
        assert (row["url"], row["secret"], row["tenant_id"], row["format"]) == (
            url,
            "top-secret",
            tenant_id,
            "set",
        )
        assert list(row["events"]) == ["created", "deactivated"] and row["cursor"] == head(database_url)

        listed = [
            line for line in cli(database_url, "webhook", "list").stdout.splitlines() if hook_id in line
        ]
        assert len(listed) == 1
        assert re.search(
            rf"{hook_id}\s+{tenant_id}\s+set\s+created,deactivated\s+active\s+{re.escape(url)}$", listed[0]
        )
        assert "top-secret" not in listed[0]

        # A delivery that ran out of attempts.
        (uid,) = create_users(database_url, tenant_id, "cli.dead")

        async def kill_delivery(engine: Any) -> int:
            async with write_transaction(engine) as conn:
                assert await store.fan_out(conn, hook_id) == 1
                (seq,) = (await store.delivery_states(conn, hook_id)).keys()
                await store.mark_failed(conn, hook_id, seq, error="HTTP 503", retry_in=None)
                return seq

        seq = run_db(database_url, kill_delivery)
        dead = cli(database_url, "webhook", "dead", "--webhook", hook_id).stdout.strip().splitlines()
        assert len(dead) == 1
        assert re.fullmatch(rf"{hook_id}\s+seq {seq}\s+{uid}\s+attempts 1\s+HTTP 503", dead[0])
        assert cli(database_url, "webhook", "dead", "--webhook", "nope", ok=False).returncode == 2

        assert cli(database_url, "webhook", "redrive", "--webhook", hook_id).stdout.strip() == (
            "redriven 1 deliveries"
        )

        async def delivery(engine: Any) -> dict[str, Any]:
            async with read_transaction(engine) as conn:
                d = webhook_deliveries
                query = select(d).where(d.c.webhook_id == hook_id)
                return dict((await conn.execute(query)).mappings().one())

        after = run_db(database_url, delivery)
        assert (after["state"], after["attempts"], after["locked_until"]) == ("pending", 0, None)
        assert cli(database_url, "webhook", "dead", "--webhook", hook_id).stdout == ""
        assert cli(database_url, "webhook", "redrive", "--webhook", hook_id).stdout.strip() == (
            "redriven 0 deliveries"
        )
    finally:
        removed = cli(database_url, "webhook", "remove", hook_id)
    assert removed.stdout.strip() == f"removed {hook_id}"
    assert run_db(database_url, stored) is None

    async def leftover(engine: Any) -> int:
        async with read_transaction(engine) as conn:
            query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == hook_id)
            return len((await conn.execute(query)).all())

    assert run_db(database_url, leftover) == 0
    again = cli(database_url, "webhook", "remove", hook_id, ok=False)
    assert again.returncode == 2 and f"no webhook {hook_id}" in again.stderr
    bad = cli(database_url, "webhook", "add", "ftp://example.com", ok=False)
    assert bad.returncode == 2 and "url must start with" in bad.stderr
    fmt = cli(database_url, "webhook", "add", url, "--format", "xml", ok=False)
    assert fmt.returncode == 2  # click rejects the choice


def test_events_tail_after_and_follow(fresh_database_url: str, tenant_id: str) -> None:
    database_url = fresh_database_url  # reads the log from `head`: an earlier rolled-back seq would stall it
    start = head(database_url)
    uids = create_users(database_url, tenant_id, "tail.a", "tail.b")
    lines = cli(database_url, "events", "tail", "--json", "--after", str(start)).stdout.splitlines()
    mine = [e for e in map(orjson.loads, lines) if e["tenant"] == tenant_id]
    assert [(e["resourceId"], e["op"]) for e in mine] == [(uids[0], "created"), (uids[1], "created")]
    assert all(e["seq"] > start and e["id"] == f"{tenant_id}:{e['seq']}" for e in mine)
    assert mine[0]["payload"]["userName"] == "tail.a"
    later = cli(database_url, "events", "tail", "--json", "--after", str(mine[0]["seq"])).stdout
    assert [orjson.loads(x)["seq"] for x in later.splitlines()] == [mine[1]["seq"]]
    plain = cli(database_url, "events", "tail", "--after", str(start)).stdout.splitlines()
    assert any(str(mine[0]["seq"]) in p and "created" in p and uids[0] in p for p in plain)

    # --follow keeps printing events as they are committed.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [PROVISOR, "events", "tail", "--follow", "--json", "--after", str(head(database_url))]
    follower = subprocess.Popen(
        [*args, "--database-url", database_url], stdout=subprocess.PIPE, env=env, text=True
    )
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        time.sleep(1.0)  # let it start and print nothing
        assert out.empty()
        (new,) = create_users(database_url, tenant_id, "tail.follow")
        deadline = time.monotonic() + 15
        seen: list[dict[str, Any]] = []
        while not any(e["resourceId"] == new for e in seen):
            seen.append(orjson.loads(out.get(timeout=max(0.1, deadline - time.monotonic()))))
        assert seen[-1]["op"] == "created" and seen[-1]["tenant"] == tenant_id
        assert follower.poll() is None  # still following
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_events_prune_older_than(fresh_database_url: str, tenant_id: str) -> None:
    """A database of its own: a prune walks the log from its oldest event and stops at the first
    one written after the cut-off (storage/log_pruning.py), so the 2001 events must be the oldest."""
    database_url = fresh_database_url

    async def setup(engine: Any) -> tuple[list[int], str]:
        seqs = []
        async with write_transaction(engine) as conn:
            for name in ("p1", "p2", "p3"):
                result = await conn.execute(
                    insert(events)
                    .values(
                        tenant_id=tenant_id,
                        at="2001-01-01T00:00:00.000000Z",
                        resource_type="User",
                        resource_id=name,
                        op="created",
                        version=1,
                        actor=None,
                        payload=None,
                    )
                    .returning(events.c.seq)
                )
                seqs.append(int(result.scalar_one()))
            hook = await store.add_webhook(conn, url="http://127.0.0.1:9/x", secret="", tenant_id=tenant_id)
            await conn.execute(
                insert(webhook_deliveries).values(
                    webhook_id=hook.id,
                    event_seq=seqs[0],
                    tenant_id=tenant_id,
                    resource_id="p1",
                    state="pending",
                    attempts=0,
                    next_attempt_at="2999-01-01T00:00:00.000000Z",
                )
            )
        return seqs, hook.id

    seqs, hook_id = run_db(database_url, setup)
    (uid,) = create_users(database_url, tenant_id, "prune.recent")  # newer than any cut-off below

    async def left(engine: Any) -> set[int]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(select(events.c.seq).where(events.c.tenant_id == tenant_id))
            return {int(s) for (s,) in rows}

    try:
        bad = cli(database_url, "events", "prune", "--older-than", "soon", ok=False)
        assert bad.returncode == 2 and "use a number and a unit" in bad.stderr
        everything = run_db(database_url, left)
        # 3650 days: only the 2001 events are older; p1 has a pending delivery and stays.
        done = cli(database_url, "events", "prune", "--older-than", "3650d").stdout.strip()
        match = re.fullmatch(r"pruned (\d+) events older than (\S+Z)", done)
        assert match is not None and int(match.group(1)) >= 2
        assert run_db(database_url, left) == everything - {seqs[1], seqs[2]}
        assert seqs[0] in everything
    finally:
        assert cli(database_url, "webhook", "remove", hook_id).returncode == 0

        async def cleanup(engine: Any) -> None:
            async with write_transaction(engine) as conn:
                await conn.execute(delete(events).where(events.c.seq == seqs[0]))

        run_db(database_url, cleanup)
    assert uid
