"""SQLite's lock between concurrent migrations (`storage.contracts.MigrationLock`)."""

from __future__ import annotations

from sqlalchemy.engine import Connection


def migration_lock(connection: Connection) -> None:
    """Nothing to take: the migration's transaction began with `BEGIN IMMEDIATE`
    (storage/migrate.py), which holds the database's one write lock until it ends."""
