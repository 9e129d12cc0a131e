"""The database as the application holds it: opened once at start-up, migrated and seeded,
checked by the readiness probe, closed at shutdown.

`Database` is the handle the HTTP layer keeps and passes to service functions; only storage looks
inside it (storage/handles.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeAlias

from provisor.storage import migrate as migrations
from provisor.storage import tenants as tenant_store
from provisor.storage.engine import DEFAULT_POOL_SIZE, create_engine
from provisor.storage.faults import OutageLog, is_outage
from provisor.storage.handles import AsyncEngine
from provisor.storage.instrument import observe_statements
from provisor.storage.interfaces import Migrations, Tenants
from provisor.storage.tenants import DEFAULT_TENANT
from provisor.storage.transactions import write_transaction

__all__ = [
    "Database",
    "close",
    "code_revisions",
    "current_revisions",
    "observe_statements",
    "open_database",
    "prepare",
    "prepare_when_reachable",
]

log = logging.getLogger("provisor")

#: The longest pause between attempts while a starting worker waits for the database (seconds).
START_RETRY_MAX_SECONDS = 2.0

Database: TypeAlias = AsyncEngine

#: Storage as the contract names it (storage/interfaces/).
_migrations: Migrations = migrations
_tenants: Tenants = tenant_store


def open_database(url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> Database:
    """A pool of connections to `url` (SQLite or PostgreSQL); no connection is made yet."""
    return create_engine(url, pool_size=pool_size)


async def prepare(database: Database, *, migrate: bool) -> None:
    """Bring the schema up to date (when `migrate`) and make sure the default tenant exists."""
    if migrate:
        await _migrations.upgrade(database)
    async with write_transaction(database) as conn:
        await _tenants.ensure_tenant(conn, DEFAULT_TENANT)


def code_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(heads, all): the revisions this code's migrations end at, and every one they know."""
    return _migrations.code_revisions()


async def current_revisions(database: Database) -> frozenset[str]:
    """The revisions recorded in the database (empty when it was never migrated)."""
    return await _migrations.current_revisions(database)


async def prepare_when_reachable(database: Database, *, migrate: bool) -> None:
    """`prepare`, waiting as long as the database is unreachable: one line when the wait begins,
    one when it ends. A worker restarted during an outage used to fail its start-up with a
    traceback, uvicorn exited it and the supervisor started another, four times a second. A worker
    waiting here does not listen yet (uvicorn opens its socket after start-up), so the others keep
    answering meanwhile."""
    outage = OutageLog(log, "worker start (waiting for the database before serving)")
    delay = 0.1
    while True:
        try:
            await prepare(database, migrate=migrate)
        except Exception as exc:
            if not is_outage(exc):
                raise
            outage.failed(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, START_RETRY_MAX_SECONDS)
            continue
        outage.succeeded()
        return


async def close(database: Database) -> None:
    """Close every pooled connection."""
    await database.dispose()
