"""Transaction helpers: one transaction per write, and the write lock taken up front on SQLite."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.sqlite_gate import writer_gate


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that commits on success and rolls back on any error.

    On SQLite the writers of all workers first queue on `SqliteWriterGate`, so that `BEGIN
    IMMEDIATE` finds the database free instead of sleeping in SQLite's busy handler.
    """
    gate = writer_gate(engine) if engine.dialect.name == "sqlite" else None
    async with gate if gate is not None else contextlib.nullcontext(), engine.connect() as conn:
        conn = await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            yield conn


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection outside any transaction, for reads that are one statement.

    Skipping BEGIN and COMMIT saves two round trips per request on PostgreSQL; one statement is
    atomic and consistent by itself on both engines.
    """
    async with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = await conn.execution_options(provisor_autocommit=True)
        else:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@asynccontextmanager
async def read_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a read transaction (a consistent snapshot on both engines)."""
    async with engine.connect() as conn, conn.begin():
        yield conn
