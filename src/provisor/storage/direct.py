"""Hot statements, run on the database driver's own connection.

Every request reads a token, and most read or write one resource. Through SQLAlchemy's execution
layer each statement costs about 260 µs of CPU on PostgreSQL; the same compiled SQL sent straight to
asyncpg costs about 60 µs (measured; docs/performance.md). So the statements on those paths are
still written with SQLAlchemy Core, compiled once per kind of database (storage/statements.py
`DirectStatement`), and then executed on the driver by the database's `Driver`
(storage/postgres/driver.py, storage/sqlite/driver.py; the contract is storage/contracts.py):

- `reader(engine).fetch`: outside any transaction (a single statement is atomic by itself), on one
  of a few connections kept between calls (checking one out of SQLAlchemy's pool costs another
  50 µs); on SQLite, a read of a few rows by key runs on the event loop's own thread instead;
- `reader(engine).fetch_batched`: the same, except that on PostgreSQL the calls of one statement
  that arrive while it is in flight go together as one round trip (storage/coalesce.py);
- `execute` / `execute_many`: inside the caller's SQLAlchemy transaction, on its connection;
- `write_in_sqlite_thread`: a whole SQLite transaction as one call in the connection's thread.

Kept connections are closed when the engine is disposed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.contracts import DirectReader
from provisor.storage.kind import backend
from provisor.storage.postgres.driver import copy_rows
from provisor.storage.sqlite.driver import write_in_sqlite_thread
from provisor.storage.statements import BY_KEY_ROWS, CALL, DirectStatement, Row, call_column

__all__ = [
    "BY_KEY_ROWS",
    "CALL",
    "DirectReader",
    "DirectStatement",
    "Row",
    "call_column",
    "copy_rows",
    "execute",
    "execute_many",
    "reader",
    "write_in_sqlite_thread",
]


def reader(engine: AsyncEngine) -> DirectReader:
    """The engine's DirectReader, created on first use."""
    return backend(engine).driver.reader(engine)


async def execute(conn: AsyncConnection, statement: DirectStatement, params: Mapping[str, Any]) -> list[Row]:
    """Run `statement` inside `conn`'s transaction; rows for SELECT or RETURNING, else []."""
    compiled = statement.compiled(conn.dialect)
    return await backend(conn).driver.execute(conn, compiled, compiled.args(params))


async def execute_many(
    conn: AsyncConnection, statement: DirectStatement, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run `statement` once per parameter set, inside `conn`'s transaction (pipelined on asyncpg)."""
    if not rows:
        return
    compiled = statement.compiled(conn.dialect)
    await backend(conn).driver.execute_many(conn, compiled, [compiled.args(params) for params in rows])
