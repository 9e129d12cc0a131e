"""Pruning the request log and the event log (storage/log_pruning.py): the old rows go in short
batches, the rest stays, and every statement the prune sends reads by key whatever the planner's
statistics.

`DELETE ... WHERE at < cutoff` read the whole request log sequentially on a PostgreSQL table never
analyzed (no statistics keeper covers it; every request adds a row), and the whole event log in any
state (it has no index on `at`), hourly per worker and at every start. The plans are read as
tests/db/test_plans.py reads them: PostgreSQL's custom and generic plans of each statement as it
was sent, SQLite's `EXPLAIN QUERY PLAN`, with no statistics, stale ones (analyzed at 1/100 of the
final size) and fresh ones; autovacuum off.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage import webhooks
from provisor.storage.event_log import prune_events
from provisor.storage.request_log import prune as prune_request_log
from provisor.storage.tables import events, request_log, webhook_deliveries
from provisor.storage.transactions import read_transaction, write_transaction
from tests.db.test_plans import Recorder, analyze, autovacuum_off, doing, pg_plans, sqlite_plan
from tests.scim_client import run_db

OLD = "2001-01-01T00:00:00.000000Z"
NEW = "2099-01-01T00:00:00.000000Z"
CUTOFF = "2010-01-01T00:00:00.000000Z"
#: Rows in each log at the end: the first half old, the second new; `stale` analyzes at SMALL.
ROWS = 20_000
SMALL = 200
#: The logs a prune must never read whole.
LOGS = ("request_log", "events", "webhook_deliveries")


def _log_row(n: int, at: str) -> dict[str, Any]:
    return {
        "at": at,
        "tenant_id": "prune",
        "request_id": f"r{n}",
        "method": "GET",
        "path": "/scim/v2/Users",
        "query": None,
        "status": 200,
        "duration_ms": 1.0,
        "token_name": "t",
        "request_body": None,
        "response_body": None,
        "unknown_attributes": None,
    }


def _event_row(n: int, at: str) -> dict[str, Any]:
    return {
        "tenant_id": "prune",
        "at": at,
        "resource_type": "User",
        "resource_id": f"u{n}",
        "op": "created",
        "version": 1,
        "actor": "test",
        "payload": {"userName": f"u{n}"},
    }


async def _seed(engine: AsyncEngine, hook: str, first: int, last: int) -> None:
    """Rows `first..last-1` of each log, old below ROWS / 2 and new from there, in key order; each
    event with a delivered delivery to `hook` (a deployment with a webhook)."""
    for start in range(first, last, 5000):
        stop = min(last, start + 5000)
        async with write_transaction(engine) as conn:
            await conn.execute(
                insert(request_log), [_log_row(n, OLD if n < ROWS // 2 else NEW) for n in range(start, stop)]
            )
            made = await conn.execute(
                insert(events).returning(events.c.seq, events.c.resource_id),
                [_event_row(n, OLD if n < ROWS // 2 else NEW) for n in range(start, stop)],
            )
            await conn.execute(
                insert(webhook_deliveries), [_delivery(hook, int(seq), rid, "delivered") for seq, rid in made]
            )


def _delivery(hook: str, seq: int, resource_id: str, state: str) -> dict[str, Any]:
    return {
        "webhook_id": hook,
        "event_seq": seq,
        "tenant_id": "prune",
        "resource_id": resource_id,
        "state": state,
        "attempts": 1,
        "next_attempt_at": NEW,
    }


async def _hook(engine: AsyncEngine) -> str:
    async with write_transaction(engine) as conn:
        made = await webhooks.add_webhook(conn, url="http://127.0.0.1:9/none", secret="", tenant_id="prune")
        return str(made.id)


def _pg_faults(node: dict[str, Any]) -> list[str]:
    found = []
    if node.get("Relation Name") in LOGS and node["Node Type"] == "Seq Scan":
        found.append(f"Seq Scan on {node['Relation Name']}")
    for child in node.get("Plans", ()):
        found += _pg_faults(child)
    return found


@pytest.mark.parametrize("statistics", ["none", "stale", "fresh"])
def test_prunes_read_the_logs_by_key_whatever_the_statistics(
    fresh_database_url: str, statistics: str
) -> None:
    url = fresh_database_url
    recorder = Recorder()

    async def work(engine: AsyncEngine) -> list[str]:
        with recorder.listening():  # before the first connection: SQLite's are traced when made
            return await prune_and_read(engine)

    async def prune_and_read(engine: AsyncEngine) -> list[str]:
        if engine.dialect.name == "postgresql":
            await autovacuum_off(engine)
        hook = await _hook(engine)
        first = SMALL if statistics == "stale" else ROWS
        await _seed(engine, hook, 0, first)
        if statistics != "none":
            await analyze(engine)
        await _seed(engine, hook, first, ROWS)
        if statistics == "fresh":
            await analyze(engine)
        with doing(recorder, "prune request log"):
            assert await prune_request_log(engine, CUTOFF) == ROWS // 2
        with doing(recorder, "prune events"):
            assert await prune_events(engine, CUTOFF) == ROWS // 2
        async with read_transaction(engine) as conn:
            left = (await conn.execute(select(request_log.c.at).distinct())).scalars().all()
            assert left == [NEW]
            left = (await conn.execute(select(events.c.at).distinct())).scalars().all()
            assert left == [NEW]
            gone = await conn.execute(
                select(webhook_deliveries.c.event_seq).where(
                    webhook_deliveries.c.event_seq.not_in(select(events.c.seq))
                )
            )
            assert not gone.all()  # the delivered records went with their events
            assert len((await conn.execute(select(webhook_deliveries.c.event_seq))).all()) == ROWS // 2
        return await _faults(engine, recorder)

    failures = run_db(url, work)
    assert not failures, "a prune read a log whole:\n" + "\n".join(failures)


async def _faults(engine: AsyncEngine, recorder: Recorder) -> list[str]:
    statements = [s for s in recorder.statements.values() if any(log in s.sql for log in LOGS)]
    operations = {s.operation for s in statements}
    # A recording that saw nothing proves nothing: both prunes read and deleted.
    assert operations == {"prune request log", "prune events"}, operations
    assert sum(s.sql.lstrip().upper().startswith("DELETE") for s in statements) >= 3, statements
    failures: list[str] = []
    if engine.dialect.name == "postgresql":
        pg = await asyncpg.connect(engine.url.set(drivername="postgresql").render_as_string(False))
        try:
            for statement in statements:
                for mode, plan in (await pg_plans(pg, statement)).items():
                    failures += [
                        f"{statement.operation} [{mode}]: {f}\n  {statement.sql}"
                        for f in _pg_faults(plan[0]["Plan"])
                    ]
        finally:
            await pg.close()
        return failures
    path = engine.url.database
    assert path is not None
    for statement in statements:
        for line in sqlite_plan(path, statement.sql):
            if line.startswith("SCAN") and any(log in line for log in LOGS):
                failures.append(f"{statement.operation}: {line}\n  {statement.sql}")
    return failures


def test_a_prune_goes_in_batches_and_stops_at_the_first_newer_row(fresh_database_url: str) -> None:
    """35 old rows, then new ones, then one more old row (a clock that went back): batches of 10
    delete the 35 and stop at the first new row; the late old row waits for a later prune."""

    async def work(engine: AsyncEngine) -> tuple[int, list[str]]:
        async with write_transaction(engine) as conn:
            rows = [_log_row(n, OLD) for n in range(35)] + [_log_row(n, NEW) for n in range(35, 40)]
            await conn.execute(insert(request_log), [*rows, _log_row(40, OLD)])
        removed = await prune_request_log(engine, CUTOFF, batch=10)
        async with read_transaction(engine) as conn:
            left = (await conn.execute(select(request_log.c.request_id).order_by(request_log.c.id))).scalars()
            return removed, list(left)

    removed, left = run_db(fresh_database_url, work)
    assert removed == 35
    assert left == [f"r{n}" for n in range(35, 41)]


def test_event_batches_keep_what_a_webhook_still_owes(fresh_database_url: str) -> None:
    """Batches of 3 over 10 old events, two of them still owed to a webhook (pending, dead) in
    different batches: the other eight go with their delivered records; the newest stays."""

    async def work(engine: AsyncEngine) -> tuple[int, list[int], dict[int, str]]:
        async with write_transaction(engine) as conn:
            result = await conn.execute(
                insert(events).returning(events.c.seq), [_event_row(n, OLD) for n in range(10)]
            )
            seqs = sorted(int(s) for s in result.scalars())
            await conn.execute(insert(events), [_event_row(10, NEW)])
        hook = await _hook(engine)
        states = {seqs[1]: "pending", seqs[5]: "dead", seqs[2]: "delivered", seqs[7]: "delivered"}
        async with write_transaction(engine) as conn:
            rows = [_delivery(hook, seq, "u", state) for seq, state in states.items()]
            await conn.execute(insert(webhook_deliveries), rows)
        removed = await prune_events(engine, CUTOFF, batch=3)
        async with read_transaction(engine) as conn:
            left = sorted(int(s) for s in (await conn.execute(select(events.c.seq))).scalars())
            kept = await conn.execute(select(webhook_deliveries.c.event_seq, webhook_deliveries.c.state))
            return removed, [seqs.index(s) if s in seqs else -1 for s in left], {int(s): st for s, st in kept}

    removed, left, deliveries = run_db(fresh_database_url, work)
    assert removed == 8
    assert left == [1, 5, -1]  # the pending and the dead one's events, and the newest (new) event
    assert sorted(deliveries.values()) == ["dead", "pending"]
