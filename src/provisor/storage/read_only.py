"""A read-only transaction that ends cleanly however its reader leaves it (both databases'
snapshot views, storage/postgres/snapshot.py and storage/sqlite/snapshot.py).

A read has nothing to commit, so it always ends with a rollback. That also matters when the reader
is cancelled mid-statement (a client that leaves while a page is being read): SQLAlchemy then
discards the connection, the driver's transaction with it, and only a rollback clears the
transaction's state; a commit raises `PendingRollbackError`, which surfaced as an unhandled error
for every client that disconnected half-way through a snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection


@asynccontextmanager
async def read_only_transaction(conn: AsyncConnection) -> AsyncIterator[None]:
    """Begin a transaction on `conn`; roll it back on the way out, whatever happened inside."""
    await conn.begin()
    try:
        yield
    finally:
        await conn.rollback()
