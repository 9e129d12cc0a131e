"""Run Alembic migrations programmatically (idempotent; safe to call on every start)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.contracts import MigrationLock
from provisor.storage.kind import backend


def _alembic_config(connection: Any) -> Config:
    config = Config()
    location = resources.files("provisor.storage").joinpath("migrations")
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Any, revision: str, lock: MigrationLock) -> None:
    lock(connection)
    command.upgrade(_alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database schema to the latest revision (or to `revision`, for tests of old schemas)."""
    lock = backend(engine).migration_lock
    async with engine.connect() as conn:
        conn = await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            await conn.run_sync(_upgrade, revision, lock)


def code_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """(heads, all): the revisions this code's migrations end at (one, unless branches await a
    merge), and every revision they know. With `current_revisions`, the one reading of "is the
    schema current" that `/readyz` (http/health.py) and the CLI's read-only commands share."""
    script = ScriptDirectory.from_config(_alembic_config(None))
    return frozenset(script.get_heads()), frozenset(rev.revision for rev in script.walk_revisions())


async def current_revisions(engine: AsyncEngine) -> frozenset[str]:
    """The revisions recorded in the database (empty when it was never migrated)."""
    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, "alembic_version"))
        if not has_table:
            return frozenset()
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return frozenset(str(row[0]) for row in rows)
