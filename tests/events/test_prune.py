"""Retention: old events go, except those a webhook still owes (pending or dead) and the newest.

A prune walks the log from its oldest event and stops at the first one written after the cut-off
(storage/log_pruning.py), so each test has a database of its own in which its events back-dated
to 2001 are the oldest, as a deployment's old events are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from provisor.config import Settings
from provisor.events.runtime import EventRuntime
from provisor.events.webhooks import WebhookWorker, WorkerConfig
from provisor.storage import webhooks as store
from provisor.storage.engine import create_engine
from provisor.storage.event_log import prune_events
from provisor.storage.tables import events, webhook_deliveries
from provisor.storage.transactions import read_transaction, write_transaction
from tests.events.support import client, eventually, run_db

OLD = "2001-01-01T00:00:00.000000Z"
CUTOFF = "2010-01-01T00:00:00.000000Z"


async def insert_event(conn: Any, tenant: str, resource_id: str, at: str = OLD) -> int:
    result = await conn.execute(
        insert(events)
        .values(
            tenant_id=tenant,
            at=at,
            resource_type="User",
            resource_id=resource_id,
            op="created",
            version=1,
            actor="test",
            payload={"userName": resource_id},
        )
        .returning(events.c.seq)
    )
    return int(result.scalar_one())


def insert_events(url: str, tenant: str, names: list[str], at: str = OLD) -> dict[str, int]:
    async def work(engine: Any) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in names:  # one transaction each: seq order is insertion order
            async with write_transaction(engine) as conn:
                out[name] = await insert_event(conn, tenant, name, at)
        return out

    result: dict[str, int] = run_db(url, work)
    return result


def remaining(url: str, tenant: str) -> set[int]:
    async def work(engine: Any) -> set[int]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(select(events.c.seq).where(events.c.tenant_id == tenant))
            return {int(s) for (s,) in rows}

    result: set[int] = run_db(url, work)
    return result


@pytest.fixture
def cleanup(fresh_database_url: str, tenant_id: str) -> Iterator[list[str]]:
    """Webhook ids to remove afterwards; the tenant's back-dated events are deleted too."""
    hooks: list[str] = []
    yield hooks

    async def work(engine: Any) -> None:
        async with write_transaction(engine) as conn:
            for hook_id in hooks:
                await store.remove_webhook(conn, hook_id)
            # Only the back-dated rows: deleting recent ones would leave a fresh gap in seq, which
            # PostgreSQL readers wait out (gap grace) before moving past.
            await conn.execute(delete(events).where(events.c.tenant_id == tenant_id, events.c.at == OLD))

    run_db(fresh_database_url, work)


def with_deliveries(url: str, tenant: str, seqs: dict[str, int], hooks: list[str]) -> str:
    """A webhook for `tenant` with deliveries `pending` (a), `dead` (b), `delivered` (c)."""

    async def work(engine: Any) -> str:
        async with write_transaction(engine) as conn:
            hook = await store.add_webhook(conn, url="http://127.0.0.1:9/none", secret="", tenant_id=tenant)
            hooks.append(hook.id)
            rows = [
                {
                    "webhook_id": hook.id,
                    "event_seq": seqs[name],
                    "tenant_id": tenant,
                    "resource_id": name,
                    "state": state,
                    "attempts": 1,
                    "next_attempt_at": "2999-01-01T00:00:00.000000Z",
                }
                for name, state in (("a", "pending"), ("b", "dead"), ("c", "delivered"))
            ]
            await conn.execute(insert(webhook_deliveries), rows)
        return hook.id

    result: str = run_db(url, work)
    return result


def prune(url: str, cutoff: str = CUTOFF) -> int:
    async def work(engine: Any) -> int:
        return await prune_events(engine, cutoff)

    result: int = run_db(url, work)
    return result


def test_prune_keeps_undelivered_and_recent_events(
    fresh_database_url: str, tenant_id: str, cleanup: list[str]
) -> None:
    seqs = insert_events(fresh_database_url, tenant_id, ["a", "b", "c", "d"])
    hook_id = with_deliveries(fresh_database_url, tenant_id, seqs, cleanup)
    recent = insert_events(
        fresh_database_url, tenant_id, ["new"], at=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    )

    assert prune(fresh_database_url) >= 2
    # a (pending) and b (dead) are still owed to the webhook; c (delivered) and d (no delivery) go;
    # the recent event is newer than the cut-off.
    assert remaining(fresh_database_url, tenant_id) == {seqs["a"], seqs["b"], recent["new"]}

    async def deliveries(engine: Any) -> dict[int, str]:
        async with read_transaction(engine) as conn:
            return await store.delivery_states(conn, hook_id)

    # The delivered record of a pruned event is removed with it.
    assert run_db(fresh_database_url, deliveries) == {seqs["a"]: "pending", seqs["b"]: "dead"}

    async def deliver_and_redrive(engine: Any) -> None:
        async with write_transaction(engine) as conn:
            await store.mark_delivered(conn, hook_id, seqs["a"])

    run_db(fresh_database_url, deliver_and_redrive)
    prune(fresh_database_url)
    assert remaining(fresh_database_url, tenant_id) == {seqs["b"], recent["new"]}
    assert run_db(fresh_database_url, deliveries) == {seqs["b"]: "dead"}


def test_prune_never_deletes_the_newest_event(
    fresh_database_url: str, tenant_id: str, cleanup: list[str]
) -> None:
    seqs = insert_events(fresh_database_url, tenant_id, ["x", "y"])
    prune(fresh_database_url)
    # y is old but the newest event in the log: SQLite would hand its seq out again.
    assert remaining(fresh_database_url, tenant_id) == {seqs["y"]}
    later = insert_events(fresh_database_url, tenant_id, ["z"], at=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z"))
    prune(fresh_database_url)
    assert remaining(fresh_database_url, tenant_id) == {later["z"]}


def test_worker_prunes_periodically_when_retention_is_set(
    fresh_database_url: str, tenant_id: str, cleanup: list[str]
) -> None:
    """`maybe_prune` is what the worker loop calls after every pass."""
    seqs = insert_events(fresh_database_url, tenant_id, ["m", "n"])

    async def left(engine: Any) -> set[int]:
        async with read_transaction(engine) as conn:
            rows = await conn.execute(select(events.c.seq).where(events.c.tenant_id == tenant_id))
            return {int(s) for (s,) in rows}

    async def main() -> None:
        engine = create_engine(fresh_database_url)
        try:
            off = EventRuntime(engine, Settings(database_url=fresh_database_url))
            assert off.worker is not None and off.worker.config.retention_seconds is None
            assert await off.worker.maybe_prune() is None  # retention 0 (default): never prunes
            assert await left(engine) == set(seqs.values())

            settings = Settings(
                database_url=fresh_database_url, event_retention_days=30, webhook_lease_seconds=5
            )
            worker = EventRuntime(engine, settings).worker
            assert worker is not None
            assert worker.config.retention_seconds == 30 * 86400 and worker.config.lease_seconds == 5
            first = await worker.maybe_prune()  # due at once on a fresh worker
            assert first is not None and first >= 1
            assert await left(engine) == {seqs["n"]}  # n is the newest event

            async with write_transaction(engine) as conn:
                p = await insert_event(conn, tenant_id, "p")
                q = await insert_event(conn, tenant_id, "q")
            assert await worker.maybe_prune() is None  # not again within prune_interval (1 h)
            assert await left(engine) == {seqs["n"], p, q}

            # A retention whose cut-off is CUTOFF: other tests leave events of 2026 behind, which
            # a cut-off of "one day ago" would prune too.
            since_cutoff = int(time.time() - datetime.fromisoformat(CUTOFF).timestamp())
            frequent = WebhookWorker(engine, WorkerConfig(retention_seconds=since_cutoff, prune_interval=0))
            assert await frequent.maybe_prune() == 2
            assert await left(engine) == {q}  # the newest stays
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_serving_app_prunes_in_its_worker(
    fresh_database_url: str, tenant_id: str, cleanup: list[str]
) -> None:
    seqs = insert_events(fresh_database_url, tenant_id, ["old1", "old2", "old3"])
    insert_events(fresh_database_url, tenant_id, ["fresh"], at=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z"))
    with client(fresh_database_url, webhooks_enabled=True, event_retention_days=1):
        eventually(lambda: not (set(seqs.values()) & remaining(fresh_database_url, tenant_id)), timeout=10)
    assert len(remaining(fresh_database_url, tenant_id)) == 1
