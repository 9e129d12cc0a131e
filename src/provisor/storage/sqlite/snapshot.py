"""SQLite's consistent snapshot view (`storage.contracts.SnapshotView`).

Writers are serialised by the database lock and assign seq = max(seq)+1 inside it, so the first
read of a read transaction (WAL mode) sees a committed prefix of the log: N = max(seq). The
transaction ends with a rollback however the reader leaves (storage/read_only.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.read_only import read_only_transaction


@asynccontextmanager
async def consistent_view(
    engine: AsyncEngine, read_head: Callable[[AsyncConnection], Awaitable[int]]
) -> AsyncIterator[tuple[AsyncConnection, int]]:
    async with engine.connect() as conn, read_only_transaction(conn):
        yield conn, await read_head(conn)
