"""The database as the application holds it: opened once at start-up, migrated and seeded,
checked by the readiness probe, closed at shutdown.

`Database` is the handle the HTTP layer keeps and passes to service functions; only storage looks
inside it (storage/handles.py).
"""

from __future__ import annotations

from typing import TypeAlias

from provisor.storage.engine import create_engine
from provisor.storage.handles import AsyncEngine
from provisor.storage.instrument import observe_statements
from provisor.storage.migrate import code_revisions, current_revisions, upgrade
from provisor.storage.tenants import DEFAULT_TENANT, ensure_tenant
from provisor.storage.transactions import write_transaction

__all__ = [
    "Database",
    "close",
    "code_revisions",
    "current_revisions",
    "observe_statements",
    "open_database",
    "prepare",
]

Database: TypeAlias = AsyncEngine


def open_database(url: str) -> Database:
    """A pool of connections to `url` (SQLite or PostgreSQL); no connection is made yet."""
    return create_engine(url)


async def prepare(database: Database, *, migrate: bool) -> None:
    """Bring the schema up to date (when `migrate`) and make sure the default tenant exists."""
    if migrate:
        await upgrade(database)
    async with write_transaction(database) as conn:
        await ensure_tenant(conn, DEFAULT_TENANT)


async def close(database: Database) -> None:
    """Close every pooled connection."""
    await database.dispose()
