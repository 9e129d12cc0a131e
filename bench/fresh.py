"""The scaffolding of the one-off benches (bench/console.py, prefix.py, roles.py): a fresh database,
migrated, with a tenant, its SCIM token and an admin token, seeded through bench/seed.py; a
`provisor serve` on it; and the database gone afterwards, whatever happened.

    with fresh_tenant("postgresql", "console", {"bench": TenantPlan(100_000)}) as fresh:
        with serving(fresh.url) as root:
            ...
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.seed import TenantPlan, TenantSeed, seed

PROVISOR = Path(sys.executable).with_name("provisor")
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://root@127.0.0.1:5432/test")


def cli(*args: str) -> str:
    """Run `provisor ARGS`; its last line of output (a token, for `token create`)."""
    done = subprocess.run([str(PROVISOR), *args], capture_output=True, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


async def pg_admin(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fresh_database(db: str, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database (SQLite file in a temporary folder, or a PostgreSQL database
    on the shared server), dropped on the way out."""
    name = f"provisor_{prefix}_bench_{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-bench-"))
    if db == "sqlite":
        url = f"sqlite:///{workdir / f'{prefix}.db'}"
    else:
        asyncio.run(pg_admin(f"CREATE DATABASE {name}"))
        url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        if db != "sqlite":
            asyncio.run(pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Fresh:
    db: str
    url: str
    tenant: str
    token: str  # the tenant's SCIM token
    admin: str  # an admin token
    seeded: TenantSeed


@contextmanager
def fresh_tenant(
    db: str, prefix: str, plan: dict[str, TenantPlan], log: Callable[..., Any] = print
) -> Iterator[Fresh]:
    """A fresh, migrated database whose first tenant of `plan` exists (tenants are made on purpose
    only), with tokens, seeded as `plan` says."""
    tenant = next(iter(plan))
    with fresh_database(db, prefix) as url:
        cli("migrate", "--database-url", url)
        for name in plan:
            cli("tenant", "create", name, "--database-url", url)
        token = cli("token", "create", "--tenant", tenant, "--name", "idp", "--database-url", url)
        admin = cli("token", "create", "--admin", "--name", "operator", "--database-url", url)
        seeded = asyncio.run(seed(url, plan, log=log))[tenant]
        yield Fresh(db, url, tenant, token, admin, seeded)


def wait_ready(root: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"provisor serve exited ({process.returncode})")
        try:
            if httpx.get(f"{root}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server at {root} did not become ready in {timeout:.0f}s")


@contextmanager
def serving(url: str, workers: int = 1) -> Iterator[str]:
    """`provisor serve` on `url` until the block ends; its root URL once it answers /readyz."""
    port = free_port()
    argv = [str(PROVISOR), "serve", "--port", str(port), "--database-url", url, "--workers", str(workers)]
    process = subprocess.Popen(
        argv,
        env={**os.environ, "PROVISOR_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        root = f"http://127.0.0.1:{port}"
        wait_ready(root, process)
        yield root
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
