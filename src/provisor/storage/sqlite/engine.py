"""SQLite's engine (`storage.contracts.EngineFactory`): aiosqlite, and the settings every new
connection gets.

WAL (readers never wait for the writer), foreign keys on, a busy timeout, `synchronous=NORMAL`
(a commit is durable once the WAL is synced at a checkpoint; crash-safe, not power-loss-safe for
the last commits), and `scim_lower`, a Unicode-aware lower() so that case-insensitive comparisons
agree with Python's. Transactions are begun by Provisor, not by sqlite3, so that writers can
`BEGIN IMMEDIATE` (`_begin`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from provisor.storage.json_columns import ENGINE_JSON
from provisor.storage.urls import parse_url


def scim_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def create_engine(url: str, *, pool_size: int) -> AsyncEngine:
    """An engine for a `sqlite://` URL. `pool_size` is PostgreSQL's: SQLite keeps SQLAlchemy's
    default pool (a file) or none at all (an in-memory database is private to its connection)."""
    driver_url = parse_url(url).set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    engine = create_async_engine(driver_url, poolclass=NullPool if ":memory:" in url else None, **ENGINE_JSON)
    event.listen(engine.sync_engine, "connect", _configure)
    event.listen(engine.sync_engine, "begin", _begin)
    return engine


#: The WAL's size, in pages, past which a worker's background checkpoints finish it under the
#: writers' gate, so that the next writer starts it over (storage/sqlite/checkpoint.py): about
#: 16 MiB (4 KiB pages).
WAL_MARK_PAGES = 4_000

#: The WAL's size, in pages, at which a commit checkpoints by itself (SQLite's `wal_autocheckpoint`;
#: its default is 1,000), while every writer waits: only a bound for when the background
#: checkpoints do not run (a process without an event loop, checkpoints that fail).
WAL_AUTOCHECKPOINT_PAGES = 4 * WAL_MARK_PAGES


def _configure(dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control so that writers can BEGIN IMMEDIATE (see `_begin`).
    dbapi_connection.isolation_level = None
    dbapi_connection.create_function("scim_lower", 1, scim_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _begin(conn: Any) -> None:
    """Writers take the write lock up front; a deferred BEGIN that upgrades later can deadlock
    against another process and fail at once with "database is locked" despite busy_timeout."""
    options = conn.get_execution_options()
    if options.get("provisor_autocommit", False):
        return
    busy = options.get("provisor_busy_ms")
    if busy is not None and conn.info.get("provisor_busy_ms", 30000) != busy:
        # A request's write waits for the lock at most what remains of its time (storage/transactions.py).
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy)}")
        conn.info["provisor_busy_ms"] = busy
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sqlite_immediate", False) else "BEGIN")
