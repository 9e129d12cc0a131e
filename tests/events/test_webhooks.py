"""Webhooks: signed, delivered once in the happy path, retried on failure, in per-resource order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from provisor.events import sign, verify_signature
from provisor.events.webhooks import WebhookWorker, WorkerConfig
from provisor.storage import webhooks as store
from provisor.storage.transactions import write_transaction
from tests.events.support import Receiver, bearer, client, eventually, mint, receiver, run_db

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def add_hook(url: str, target: str, tenant: str, ops: list[str] | None = None) -> str:
    async def work(engine: Any) -> str:
        async with write_transaction(engine) as conn:
            hook = await store.add_webhook(conn, url=target, secret="s3cret", tenant_id=tenant, ops=ops)
        return hook.id

    result: str = run_db(url, work)
    return result


def bodies(rx: Receiver) -> list[dict[str, Any]]:
    with rx.lock:
        return [orjson.loads(b) for _, b in rx.received]


def drive(url: str, tenant: str, steps: int) -> str:
    """Create a user and flip `active` `steps` times; returns the user id."""
    scim = mint(url, tenant)
    with client(url) as c:
        h = bearer(scim)
        uid: str = c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "w"}, headers=h).json()["id"]
        for i in range(steps):
            op = {"op": "replace", "path": "active", "value": i % 2 == 1}
            assert (
                c.patch(
                    f"/scim/v2/Users/{uid}", json={"schemas": [PATCH], "Operations": [op]}, headers=h
                ).status_code
                == 200
            )
    return uid


def run_worker(url: str, until: Any, config: WorkerConfig) -> None:
    async def main() -> None:
        from provisor.storage.engine import create_engine

        engine = create_engine(url)
        worker = WebhookWorker(engine, config)
        async with httpx.AsyncClient() as http:
            for _ in range(400):
                await worker.run_once(http)
                if until():
                    break
                await asyncio.sleep(0.05)
        await engine.dispose()

    asyncio.run(main())


def test_each_event_is_delivered_once_signed_and_in_order(database_url: str, tenant_id: str) -> None:
    with receiver() as rx:
        hook_id = add_hook(database_url, rx.url, tenant_id)
        uid = drive(database_url, tenant_id, 3)
        run_worker(database_url, lambda: len(rx.received) >= 4, WorkerConfig())
        got = bodies(rx)
        assert [(e["resourceId"], e["op"]) for e in got] == [
            (uid, "created"),
            (uid, "deactivated"),
            (uid, "activated"),
            (uid, "deactivated"),
        ]
        for headers, raw in rx.received:
            assert headers["provisor-event-id"] == orjson.loads(raw)["id"]
            assert verify_signature("s3cret", headers["provisor-signature"], raw)
            assert not verify_signature("other", headers["provisor-signature"], raw)
        run_worker(database_url, lambda: True, WorkerConfig())  # nothing left to send
        assert len(rx.received) == 4

        async def states(engine: Any) -> dict[int, str]:
            async with write_transaction(engine) as conn:
                return await store.delivery_states(conn, hook_id)

        assert set(run_db(database_url, states).values()) == {"delivered"}


def test_a_500_is_retried_and_later_events_wait_for_it(database_url: str, tenant_id: str) -> None:
    with receiver() as rx:
        rx.script = [500]
        add_hook(database_url, rx.url, tenant_id)
        uid = drive(database_url, tenant_id, 2)
        config = WorkerConfig(backoff_base=0.1)
        run_worker(database_url, lambda: len(rx.received) >= 3, config)
        got = bodies(rx)
        # "created" failed once, was retried, and nothing for the user overtook it.
        assert [(e["resourceId"], e["op"]) for e in got] == [
            (uid, "created"),
            (uid, "deactivated"),
            (uid, "activated"),
        ]


def test_dead_after_max_attempts_then_redrive(database_url: str, tenant_id: str) -> None:
    with receiver() as rx:
        rx.script = [500, 500]
        hook_id = add_hook(database_url, rx.url, tenant_id, ops=["created"])
        drive(database_url, tenant_id, 1)  # "deactivated" is filtered out by the subscription
        config = WorkerConfig(max_attempts=2, backoff_base=0.05)

        async def dead(engine: Any) -> list[dict[str, Any]]:
            async with write_transaction(engine) as conn:
                return await store.dead_deliveries(conn, hook_id)

        run_worker(database_url, lambda: not rx.script, config)
        rows = eventually(lambda: run_db(database_url, dead))
        assert len(rows) == 1 and rows[0]["attempts"] == 2 and rows[0]["last_error"] == "HTTP 500"
        assert rx.received == []

        async def redrive(engine: Any) -> int:
            async with write_transaction(engine) as conn:
                return await store.redrive(conn, hook_id)

        assert run_db(database_url, redrive) == 1
        run_worker(database_url, lambda: len(rx.received) >= 1, config)
        assert [e["op"] for e in bodies(rx)] == ["created"]


def test_the_app_lifespan_runs_the_worker(database_url: str, tenant_id: str) -> None:
    with receiver() as rx:
        add_hook(database_url, rx.url, tenant_id)
        scim = mint(database_url, tenant_id)
        with client(database_url, webhooks_enabled=True) as c:
            c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "life"}, headers=bearer(scim))
            eventually(lambda: rx.received)
        assert [e["op"] for e in bodies(rx)] == ["created"]


def test_signature_round_trip_and_tolerance() -> None:
    body = b'{"a":1}'
    header = sign("k", body, timestamp=1_700_000_000)
    assert verify_signature("k", header, body, now=1_700_000_100)
    assert verify_signature("k", header, body.decode(), now=1_700_000_100)
    assert not verify_signature("k", header, body + b" ", now=1_700_000_100)
    assert not verify_signature("k", header, body, now=1_700_000_301)
    assert not verify_signature("k", "t=abc,v1=00", body)
    assert not verify_signature("k", "", body)
    rotated = header + ",v1=" + "0" * 64
    assert verify_signature("k", rotated, body, now=1_700_000_000)


def test_an_installation_without_webhooks_polls_with_one_statement(fresh_database_url: str) -> None:
    """Every worker polls several times a second: with no webhook that is one SELECT, no
    transaction; once a webhook exists the worker fans out and looks for due deliveries again."""
    from sqlalchemy import event

    from provisor.storage.engine import create_engine

    async def main() -> None:
        engine = create_engine(fresh_database_url)
        statements: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        worker = WebhookWorker(engine, WorkerConfig())
        async with httpx.AsyncClient() as http:
            assert await worker.run_once(http) == 0
            assert len(statements) == 1 and "webhooks" in statements[0]
            async with write_transaction(engine) as conn:
                await store.add_webhook(conn, url="http://127.0.0.1:9/", secret="s")
            statements.clear()
            assert await worker.fan_out() == 0  # a webhook, nothing behind it yet
            assert await worker.run_once(http) == 0
            assert any("webhook_deliveries" in s for s in statements)  # due deliveries looked for
        await engine.dispose()

    asyncio.run(main())


def test_a_write_wakes_its_own_process_worker_at_once(database_url: str, tenant_id: str) -> None:
    """With a 30 s poll, the delivery of this process's own write must not wait for the poll: the
    endpoint wakes the worker after every successful write."""
    with receiver() as rx:
        add_hook(database_url, rx.url, tenant_id)
        scim = mint(database_url, tenant_id)
        with client(database_url, webhooks_enabled=True, webhook_poll_seconds=30.0) as c:
            time.sleep(1.0)  # the worker's first pass is over: from here on it would sleep 30 s
            c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "woken"}, headers=bearer(scim))
            eventually(lambda: rx.received, timeout=5.0)
        assert [e["op"] for e in bodies(rx)] == ["created"]


def test_without_webhooks_a_wake_up_runs_no_pass(fresh_database_url: str) -> None:
    """Every write wakes its process's worker; with no webhook at all that must cost nothing, or a
    stream of writes would drive one extra `SELECT` per write. With one, wake-ups run passes."""
    from sqlalchemy import event

    from provisor.storage.engine import create_engine

    async def main() -> tuple[int, int]:
        engine = create_engine(fresh_database_url)
        statements: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        worker = WebhookWorker(engine, WorkerConfig(poll_interval=30.0))
        idling = asyncio.Event()
        wait_idle = worker._wakeup.idle

        async def noted_idle() -> None:
            idling.set()
            await wait_idle()

        worker._wakeup.idle = noted_idle  # type: ignore[method-assign]
        worker.start()
        try:
            # the first pass (one SELECT on webhooks, then pruning) ends in the idle wait; a fixed
            # sleep here once ended before it on a loaded machine
            await asyncio.wait_for(idling.wait(), 30)
            first = len(statements)
            for _ in range(10):
                worker.wake()
                await asyncio.sleep(0.03)
            idle = len(statements) - first
            async with write_transaction(engine) as conn:
                await store.add_webhook(conn, url="http://127.0.0.1:9/", secret="s", tenant_id=None, ops=None)
            worker._has_webhooks = True  # as the next poll would find (30 s away here)
            before = len(statements)
            worker.wake()
            # the woken pass's first statement; polled from a thread, as this loop runs the pass
            await asyncio.to_thread(eventually, lambda: len(statements) > before, 30)
            return idle, len(statements) - before
        finally:
            await worker.stop()
            await engine.dispose()

    idle, woken = asyncio.run(main())
    assert idle == 0
    assert woken > 0
