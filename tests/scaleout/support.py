"""One scenario for every scale-out topology: several server URLs in front of one database must
behave as one deployment (token revocation, the shared rate limit, the event feed, webhooks), and
heavy concurrent traffic must not hit a single database error."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.tenants import ensure_tenant
from provisor.storage.tokens import create_token
from provisor.storage.transactions import write_transaction
from tests.events.support import Receiver, eventually
from tests.scim_client import run_db, set_tenant_settings

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PROVISOR = str(Path(sys.executable).with_name("provisor"))


def cli(database_url: str, *args: str, prefix: Sequence[str] = ()) -> str:
    """Run `provisor ARGS --database-url URL` (optionally under `prefix`, e.g. `ip netns exec NS`);
    its stdout, or an AssertionError with its stderr."""
    command = [*prefix, PROVISOR, *args, "--database-url", database_url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)} failed: {done.stderr[-1500:]}"
    return done.stdout


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1].strip()


@dataclass
class Deployment:
    """The servers' base URLs (`http://host:port`), their database's URL, and how to run the CLI
    against it. Set-up goes through the storage functions (a CLI call costs seconds of start-up on
    a loaded machine); the operator's own action under test, `token revoke`, goes through the CLI."""

    bases: list[str]
    database_url: str
    run_cli: Callable[..., str]


def mint(database_url: str, tenant: str | None, name: str, kind: str = "scim") -> tuple[str, str]:
    """(token id, secret) of a new token."""

    async def work(engine: AsyncEngine) -> tuple[str, str]:
        async with write_transaction(engine) as conn:
            if tenant is not None:
                await ensure_tenant(conn, tenant)
            info, secret = await create_token(conn, tenant_id=tenant, name=name, kind=kind)
        return info.id, secret

    return run_db(database_url, work)


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}


async def _gather_limited(calls: list[Any], limit: int = 64) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Any) -> Any:
        async with gate:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


def load(deployment: Deployment, token: str, users: int) -> list[str]:
    """`users` creates spread over all servers, then a GET of each through another server, a PATCH
    and a filter, all concurrent: every answer must be the right one. Returns the user ids."""

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(headers=headers(token), timeout=60, limits=limits) as http:
            bases = itertools.cycle(deployment.bases)

            def create(i: int, base: str) -> Any:
                body = {"schemas": [USER], "userName": f"load{i}@example.com", "externalId": f"x{i}"}
                return lambda: http.post(f"{base}/scim/v2/Users", json=body)

            created = await _gather_limited([create(i, next(bases)) for i in range(users)])
            assert [r.status_code for r in created] == [201] * users, [r.text for r in created][:3]
            ids = [r.json()["id"] for r in created]
            patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
            calls: list[Any] = []
            for i, uid in enumerate(ids):
                base = next(bases)
                calls.append(lambda b=base, u=uid: http.get(f"{b}/scim/v2/Users/{u}"))
                calls.append(lambda b=base, u=uid: http.patch(f"{b}/scim/v2/Users/{u}", json=patch))
                filt = f'userName eq "load{i}@example.com"'
                calls.append(lambda b=base, f=filt: http.get(f"{b}/scim/v2/Users", params={"filter": f}))
            answers = await _gather_limited(calls)
            assert [r.status_code for r in answers] == [200] * len(calls), [
                r.text for r in answers if r.status_code != 200
            ][:3]
            for i in range(users):
                got, patched, found = answers[3 * i : 3 * i + 3]
                assert got.json()["id"] == ids[i] and patched.json()["active"] is False
                assert [u["id"] for u in found.json()["Resources"]] == [ids[i]]
            return ids

    return asyncio.run(main())


def check_revocation(deployment: Deployment, tenant: str, rounds: int = 20, window: float = 0.0) -> None:
    """A token revoked through the CLI is refused by every server (every worker) at once, or, with
    the token caches on, once the notification has arrived: within `window` seconds (the commit
    returns before PostgreSQL passes notifications on, docs/security.md)."""
    token_id, secret = mint(deployment.database_url, tenant, "revoked-soon")

    async def statuses() -> list[int]:
        async with httpx.AsyncClient(headers=headers(secret), timeout=30) as http:
            bases = deployment.bases * rounds
            answers = await asyncio.gather(
                *(http.get(f"{b}/scim/v2/Users", params={"count": "1"}) for b in bases)
            )
            return [r.status_code for r in answers]

    assert set(asyncio.run(statuses())) == {200}
    deployment.run_cli("token", "revoke", token_id)
    deadline = time.monotonic() + window
    while window and set(asyncio.run(statuses())) != {401} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(asyncio.run(statuses())) == {401}


def check_shared_rate_limit(deployment: Deployment, tenant: str) -> None:
    """One token bucket for the tenant, whichever server answers."""
    set_tenant_settings(deployment.database_url, tenant, rate_limit_per_second=1, rate_limit_burst=5)
    _, secret = mint(deployment.database_url, tenant, "limited")

    async def fire() -> tuple[list[int], float]:
        async with httpx.AsyncClient(headers=headers(secret), timeout=30) as http:
            began = time.monotonic()
            bases = deployment.bases * (30 // len(deployment.bases))
            answers = await asyncio.gather(*(http.get(f"{b}/scim/v2/Users") for b in bases))
            return [r.status_code for r in answers], time.monotonic() - began

    codes, elapsed = asyncio.run(fire())
    assert set(codes) == {200, 429}, codes
    # Separate buckets per server (or worker) would admit 5 each.
    assert 5 <= codes.count(200) <= 5 + int(elapsed) + 1, (codes.count(200), elapsed)


def feed(base: str, admin: str, tenant: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        params = {"tenant": tenant, "after": str(after), "limit": "1000"}
        page = httpx.get(f"{base}/admin/v1/events", params=params, headers=headers(admin), timeout=30).json()
        events += page["events"]
        if not page["events"]:
            return events
        after = page["next"]


def check_feed_and_webhooks(
    deployment: Deployment, tenant: str, ids: list[str], rx: Receiver, patched: bool = True
) -> None:
    """Every server serves the same feed, holding each change once; the webhook receives each
    event exactly once although every server runs a delivery worker."""
    _, admin = mint(deployment.database_url, None, "feed", kind="admin")
    feeds = [feed(base, admin, tenant) for base in deployment.bases]
    assert all(f == feeds[0] for f in feeds[1:])
    events = feeds[0]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    created = sorted(e["resourceId"] for e in events if e["op"] == "created")
    assert created == sorted(ids)
    if patched:
        assert sorted(e["resourceId"] for e in events if e["op"] == "deactivated") == sorted(ids)

    def delivered() -> list[str] | None:
        with rx.lock:
            got = [str(orjson.loads(body)["id"]) for _, body in rx.received]
        return got if len(got) >= len(events) else None

    got = eventually(delivered, timeout=30)
    time.sleep(1.0)  # a duplicate would arrive within the workers' poll interval
    with rx.lock:
        assert len(rx.received) == len(got) == len(set(got)) == len(events)
    assert sorted(got) == sorted(str(e["id"]) for e in events)


@contextmanager
def receiver_on(host: str) -> Iterator[Receiver]:
    """A webhook receiver (tests/events/support.py's `Receiver`) listening on `host`."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://{host}:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
