"""Two Provisor servers on two "hosts" (network namespaces with their own addresses) over one
PostgreSQL behave as one deployment: a revoked token is refused by both once `token revoke` returns
(their token caches are on, emptied through LISTEN/NOTIFY before the command returns), one
rate-limit bucket per tenant, one event feed, and each webhook delivery made once although both
run delivery workers.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _admin_url, _own_postgres_database
from tests.live.server import wait_ready
from tests.scaleout.netns import hosts
from tests.scaleout.relay import relay
from tests.scaleout.support import (
    PROVISOR,
    Deployment,
    check_feed_and_webhooks,
    check_revocation,
    check_shared_rate_limit,
    cli,
    load,
    mint,
    receiver_on,
)

PORT = 8000


@pytest.fixture
def direct_url() -> Iterator[str]:
    with _own_postgres_database(_admin_url(), "provisor_hosts") as url:
        yield url


def _listeners(direct_url: str) -> list[str]:
    """The token caches' LISTEN sessions on the test's database (one per worker)."""

    async def query() -> list[str]:
        conn = await asyncpg.connect(direct_url.replace("postgresql://", "postgres://"))
        try:
            rows = await conn.fetch(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'provisor-auth-listener'"
            )
            return [r[0] for r in rows]
        finally:
            await conn.close()

    return asyncio.run(query())


def test_two_hosts_over_one_postgresql_behave_as_one_deployment(direct_url: str, tmp_path: Path) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    run_cli = functools.partial(cli, direct_url)
    server = make_url(direct_url)
    with ExitStack() as stack:
        net = stack.enter_context(hosts(2))
        port = stack.enter_context(relay(net.gateway, (server.host or "127.0.0.1", server.port or 5432)))
        shared = server.set(host=net.gateway, port=port).render_as_string(hide_password=False)
        rx = stack.enter_context(receiver_on(net.gateway))
        run_cli("tenant", "create", tenant)
        run_cli("webhook", "add", rx.url, "--tenant", tenant)
        processes = []
        for i in range(2):
            command = [
                *net.prefix(i),
                PROVISOR,
                "serve",
                "--host",
                net.addresses[i],
                "--port",
                str(PORT),
                "--database-url",
                shared,
                # The database is reached without a password over a link that exists only here.
                "--allow-insecure-database",
            ]
            # support.load sends 64 requests at once, above PROVISOR_MAX_INFLIGHT (docs/operations.md).
            env = {**os.environ, "PROVISOR_MAX_INFLIGHT": "0"}
            # A file, not a pipe: a pipe nobody reads until the end blocks the server once it is full.
            log = stack.enter_context((tmp_path / f"host{i}.log").open("wb"))
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
            stack.callback(_stop, process)
            processes.append(process)
        bases = [f"http://{address}:{PORT}" for address in net.addresses]
        for i, (base, process) in enumerate(zip(bases, processes, strict=True)):
            wait_ready(base, process, log_path=tmp_path / f"host{i}.log")
        deployment = Deployment(bases, direct_url, run_cli)
        _, token = mint(direct_url, tenant, "load")
        assert len(_listeners(direct_url)) == 2  # both hosts answer tokens from their caches
        ids = load(deployment, token, users=60)
        check_revocation(deployment, tenant)  # the revoke command waits for both hosts' caches
        check_shared_rate_limit(deployment, f"{tenant}-rl")
        check_feed_and_webhooks(deployment, tenant, ids, rx)
        for i, process in enumerate(processes):
            _stop(process)
            errors = (tmp_path / f"host{i}.log").read_text(errors="replace")
            assert "Traceback" not in errors, errors[-3000:]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
