"""Provisor behind a real PgBouncer 1.18 in transaction mode (`?pgbouncer=true`, docs/scale-out.md).

A small server pool (3 server connections for two workers' pools of up to 30 client connections
each) makes consecutive statements of one client connection land on different server
connections all the time: a named prepared statement, a startup parameter PgBouncer refuses, or
any session state would show up here as failed requests.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from provisor.storage.auth_cache import PING_SECONDS, AuthCache, AuthListener
from provisor.storage.engine import create_engine
from tests.conftest import _admin_url, _own_postgres_database
from tests.events.support import receiver
from tests.live.server import live_server
from tests.scaleout.pgbouncer import pgbouncer
from tests.scaleout.support import (
    PROVISOR,
    Deployment,
    check_feed_and_webhooks,
    check_revocation,
    check_shared_rate_limit,
    cli,
    last_line,
    load,
)


@pytest.fixture
def direct_url() -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own (migrated; dropped afterwards)."""
    with _own_postgres_database(_admin_url(), "provisor_pgb") as url:
        yield url


def _sessions(direct_url: str, application_name: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(direct_url.replace("postgresql://", "postgres://"))
        try:
            found: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = $1",
                application_name,
            )
            return found
        finally:
            await conn.close()

    return asyncio.run(count())


def test_the_cli_needs_the_pgbouncer_parameter(direct_url: str) -> None:
    """Without `?pgbouncer=true` the CLI fails at once and says why (the `jit` startup parameter)."""
    with pgbouncer(direct_url, pool_size=2) as via:
        plain = via.replace("?pgbouncer=true", "")
        done = cli_failure(plain, "token", "list")
        assert "jit" in done
        cli(via, "migrate")
        secret = last_line(cli(via, "token", "create", "--name", "first"))
        assert secret.startswith("prv_")
        assert "first" in cli(via, "token", "list")


def cli_failure(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [PROVISOR, *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    return done.stderr


def test_a_pooler_that_drops_notifications_keeps_the_token_cache_off(direct_url: str) -> None:
    """Behind PgBouncer in transaction mode the listener's LISTEN and a NOTIFY it sent itself can
    share a server connection, which then hands back its own notification while other sessions'
    (the revocations) never arrive. A URL without `?pgbouncer=true` (here with its startup
    parameters ignored by PgBouncer so that it connects at all) must still never turn the cache
    on."""

    async def main(url: str) -> tuple[bool, bool]:
        engine = create_engine(url)
        cache: AuthCache[str] = AuthCache()
        listener = AuthListener(engine, cache)
        try:
            await listener.start()
            await asyncio.sleep(2.5 * PING_SECONDS)
            return cache.enabled, listener._task is not None
        finally:
            await listener.stop()
            await engine.dispose()

    with pgbouncer(direct_url, pool_size=2, ignore="jit,max_parallel_workers_per_gather") as via:
        assert asyncio.run(main(via.replace("?pgbouncer=true", ""))) == (False, True)
    # The same listener straight on PostgreSQL does switch on: the test can tell the difference.
    assert asyncio.run(main(direct_url)) == (True, True)


def test_two_workers_behind_pgbouncer_behave_as_one_deployment(direct_url: str) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    with pgbouncer(direct_url, pool_size=3) as via, receiver() as rx:
        run_cli = functools.partial(cli, via)
        run_cli("tenant", "create", tenant)
        run_cli("webhook", "add", rx.url, "--tenant", tenant)
        # support.load sends 64 requests at once: above PROVISOR_MAX_INFLIGHT per worker (overload is
        # tests/faults/test_overload.py's subject, not this one's).
        with live_server(via, tenant, workers=2, env={"PROVISOR_MAX_INFLIGHT": "0"}) as server:
            base = server.base_url.removesuffix("/scim/v2")
            deployment = Deployment([base], via, run_cli)
            # The token cache stays off: no worker holds a LISTEN connection.
            assert _sessions(direct_url, "provisor-auth-listener") == 0
            ids = load(deployment, server.token, users=100)
            check_revocation(deployment, tenant)  # no cache: refused at once
            check_shared_rate_limit(deployment, f"{tenant}-rl")
            check_feed_and_webhooks(deployment, tenant, ids, rx)
        errors = server.process.stderr.read().decode() if server.process.stderr else ""
    assert "prepared statement" not in errors and "Traceback" not in errors, errors[-3000:]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://u@127.0.0.1:1/db?pgbouncer=maybe", "pgbouncer='maybe'"),
        ("mysql://u@127.0.0.1:1/db", "mysql"),
    ],
)
def test_a_database_url_the_engine_cannot_use_is_bad_usage(url: str, named: str) -> None:
    done = subprocess.run([PROVISOR, "token", "list", "--database-url", url], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert named in done.stderr.splitlines()[0]
