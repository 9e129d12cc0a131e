"""`/healthz` and `/readyz` (http/health.py): readiness follows the database and its schema.

The outage test runs its own PostgreSQL (initdb/pg_ctl in a temp dir, on a free port) so that it can
stop and start it; the machine's shared server is never touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from starlette.testclient import TestClient

from provisor.cli import main
from provisor.config import Settings
from provisor.http.app import create_app
from provisor.storage.migrate import code_revisions
from provisor.storage.transactions import write_transaction
from tests.live.server import free_port, live_server
from tests.scim_client import run_db


def test_ready_on_a_current_schema(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url, webhooks_enabled=False))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        heads, _ = code_revisions()
        assert ready.json() == {"status": "ready", "schema": sorted(heads)}


def test_unready_while_the_schema_is_behind(fresh_database_url: str) -> None:
    """A database at an older revision: 503 naming both revisions and the fix; ready once migrated."""

    async def set_revision(engine: Any, revision: str) -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})

    heads, _ = code_revisions()
    (head,) = heads
    older = f"{int(head) - 1:04d}"
    run_db(fresh_database_url, lambda engine: set_revision(engine, older))
    settings = Settings(database_url=fresh_database_url, webhooks_enabled=False, migrate_on_start=False)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable" and body["schema"] == [older]
        assert older in body["reason"] and head in body["reason"] and "provisor migrate" in body["reason"]
        assert client.get("/healthz").status_code == 200  # alive: a restart would not help
        run_db(fresh_database_url, lambda engine: set_revision(engine, head))
        assert client.get("/readyz").status_code == 200
        # A revision this code does not know (newer code migrated it): still serving.
        run_db(fresh_database_url, lambda engine: set_revision(engine, "9999"))
        newer = client.get("/readyz")
        assert newer.status_code == 200 and newer.json()["note"] == "schema newer than code"


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class OwnPostgres:
    """A throwaway PostgreSQL cluster, run as an unprivileged user when the tests run as root."""

    def __init__(self, root: Path, port: int) -> None:
        self.bin = _postgres_bin()
        self.data = root / "data"
        self.port = port
        self.user = "postgres" if os.geteuid() == 0 else None
        self.log = root / "pg.log"

    def run(self, *args: str) -> None:
        assert self.bin is not None
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "provisor", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://provisor@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if _postgres_bin() is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="provisor-pg-"))
    pg = OwnPostgres(root, free_port())
    if pg.user:
        shutil.chown(root, pg.user)
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def _ready(base: str) -> httpx.Response:
    return httpx.get(f"{base}/readyz", timeout=10)


def test_unready_while_the_database_is_down(own_postgres: OwnPostgres) -> None:
    """A real server with 2 workers: 503 with a reason while PostgreSQL is down, alive throughout,
    ready again (without a restart) once it is back."""
    migrated = CliRunner().invoke(main, ["migrate", "--database-url", own_postgres.url])
    assert migrated.exit_code == 0, migrated.output
    # While the database is down every worker logs errors: more than the unread stderr pipe of
    # `live_server` holds, which would block the workers' writes (and their event loops).
    quiet = {"PROVISOR_LOG_LEVEL": "critical"}
    with live_server(own_postgres.url, "health", workers=2, env=quiet) as server:
        base = server.base_url.removesuffix("/scim/v2")
        assert _ready(base).status_code == 200
        own_postgres.stop()
        for _ in range(4):  # whichever worker answers
            down = _ready(base)
            assert down.status_code == 503
            assert down.json()["status"] == "unavailable"
            assert down.json()["reason"].startswith("database unreachable")
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        own_postgres.start()
        deadline = time.monotonic() + 20
        while _ready(base).status_code != 200:
            assert time.monotonic() < deadline, "not ready again after the database came back"
            time.sleep(0.2)
        assert httpx.get(f"{server.base_url}/Users", headers=server.headers, timeout=10).status_code == 200
