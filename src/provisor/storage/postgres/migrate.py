"""PostgreSQL's lock between concurrent migrations (`storage.contracts.MigrationLock`)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

#: Arbitrary constant: serialises concurrent `migrate` runs on one PostgreSQL.
_LOCK_KEY = 7_411_964_201


def migration_lock(connection: Connection) -> None:
    """A transaction-level advisory lock: released by the migration's commit or rollback."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
