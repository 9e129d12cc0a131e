"""Crash safety of webhook delivery: `kill -9` a serving `provisor serve` (every uvicorn process)
while deliveries are in flight, start it again on the same database, and every event in the
feed still reaches the receiver at least once, in per-resource order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx

from provisor.storage import webhooks as store
from provisor.storage.transactions import write_transaction
from tests.events.support import eventually, head, mint, run_db
from tests.live.server import free_port

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LEASE_SECONDS = "3"


@dataclass
class SlowReceiver:
    """Handles one request at a time, ~200 ms each; records each event id as it arrives."""

    ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.ids)


@contextmanager
def slow_receiver(delay: float = 0.2) -> Iterator[SlowReceiver]:
    state = SlowReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                state.ids.append(self.headers["Provisor-Event-Id"])
            time.sleep(delay)
            try:
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender was killed mid-request

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.request_queue_size = 64
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve(database_url: str, workers: int, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`provisor serve` in its own process group (so the test can kill every uvicorn process)."""
    port = free_port()
    env = {
        **os.environ,
        "PROVISOR_LOG_LEVEL": "warning",
        "PROVISOR_WEBHOOK_LEASE_SECONDS": LEASE_SECONDS,
    }
    provisor = Path(sys.executable).with_name("provisor")
    args = [str(provisor), "serve", "--port", str(port), "--database-url", database_url]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [*args, "--workers", str(workers)],
            env=env,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"provisor serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            with_kill(process, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with_kill(process, signal.SIGKILL)
                process.wait(timeout=10)


def with_kill(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process group of `process` (the server and all its uvicorn workers)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def changes(base: str, token: str, users: int, steps: int) -> None:
    """`users` users, each created then flipped `steps` times: users * (steps + 1) events."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{base}/scim/v2", headers=headers, timeout=10) as c:
        ids = []
        for i in range(users):
            created = c.post("/Users", json={"schemas": [USER], "userName": f"crash{i}"})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        for step in range(steps):
            for uid in ids:
                op = {"op": "replace", "path": "active", "value": step % 2 == 1}
                patched = c.patch(f"/Users/{uid}", json={"schemas": [PATCH], "Operations": [op]})
                assert patched.status_code == 200, patched.text


def feed(base: str, admin: str, after: int, tenant: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{base}/admin/v1/events",
        params={"after": after, "tenant": tenant, "limit": 1000},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["events"]
    return found


def test_kill_9_during_deliveries_loses_no_event(
    fresh_database_url: str, tenant_id: str, tmp_path: Path
) -> None:
    database_url = fresh_database_url  # reads the log from `head`: an earlier rolled-back seq would stall it
    began = time.monotonic()
    token, admin, start = mint(database_url, tenant_id), mint(database_url, None, "admin"), head(database_url)
    log = tmp_path / "serve.log"
    with slow_receiver() as rx:

        async def add(engine: Any) -> str:
            async with write_transaction(engine) as conn:
                hook = await store.add_webhook(conn, url=rx.url, secret="k", tenant_id=tenant_id)
            return hook.id

        hook_id: str = run_db(database_url, add)
        try:
            with serve(database_url, 2, log) as (base, process):
                changes(base, token, users=6, steps=4)  # 30 events
                total = len(feed(base, admin, start, tenant_id))
                assert total == 30
                eventually(lambda: len(rx.snapshot()) >= 5, timeout=20, interval=0.01)
                with_kill(process, signal.SIGKILL)
                process.wait(timeout=10)
                eventually(lambda: not group_alive(process.pid), timeout=10)
            before = set(rx.snapshot())
            assert 5 <= len(before) < total, "the kill must land while deliveries are still owed"

            with serve(database_url, 1, log) as (base, _):
                events = feed(base, admin, start, tenant_id)
                wanted = {e["id"] for e in events}
                assert len(wanted) == total
                eventually(lambda: wanted <= set(rx.snapshot()), timeout=30, interval=0.1)
        finally:

            async def remove(engine: Any) -> None:
                async with write_transaction(engine) as conn:
                    await store.remove_webhook(conn, hook_id)

            run_db(database_url, remove)

    received = rx.snapshot()
    assert set(received) >= wanted  # at least once; duplicates are allowed
    # Per resource, first arrivals follow seq order even across the crash.
    seq_of = {e["id"]: e["seq"] for e in events}
    by_resource: dict[str, list[int]] = {}
    first_seen: set[str] = set()
    resource_of = {e["id"]: e["resourceId"] for e in events}
    for event_id in received:
        if event_id in first_seen or event_id not in seq_of:
            continue
        first_seen.add(event_id)
        by_resource.setdefault(resource_of[event_id], []).append(seq_of[event_id])
    assert all(seqs == sorted(seqs) for seqs in by_resource.values()), by_resource
    assert time.monotonic() - began < 40
