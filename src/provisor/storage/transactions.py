"""Transaction helpers: one transaction per write, and the write lock taken up front on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that commits on success and rolls back on any error."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            yield conn


@asynccontextmanager
async def read_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a read transaction (a consistent snapshot on both engines)."""
    async with engine.connect() as conn, conn.begin():
        yield conn
