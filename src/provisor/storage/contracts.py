"""The contracts of the small per-database parts of storage (`Backend`'s fields besides members).

Each Protocol says what both databases' implementations promise; `storage/postgres/` and
`storage/sqlite/` implement them and mypy checks each against it where `Backend` is built. The
portable modules that call them (storage/consumers.py, snapshot.py, migrate.py, ...) import
`storage/kind.py`; this module and the implementations must not, or the imports would cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class OnConflictInsert(Protocol):
    """The database's own `insert()` construct (`sqlalchemy.dialects.<kind>.insert`)."""

    def __call__(self, table: Table) -> Any:
        """An INSERT into `table` that offers `on_conflict_do_nothing()`,
        `on_conflict_do_update(index_elements=..., set_=...)` and `.excluded`, with the same
        meaning on both databases (the SQL is `INSERT ... ON CONFLICT` on both)."""
        ...


class SnapshotView(Protocol):
    """How a read transaction is made to see exactly the events up to one seq (storage/snapshot.py)."""

    def consistent_view(
        self, engine: AsyncEngine, read_head: Callable[[AsyncConnection], Awaitable[int]]
    ) -> AbstractAsyncContextManager[tuple[AsyncConnection, int]]:
        """A connection inside a read transaction, and the seq N (read by `read_head`) such that
        its view holds the effects of every event with seq <= N and of none with seq > N, for as
        long as the context lasts. May raise the driver's lock-timeout error when writers keep it
        waiting too long (storage.snapshot.is_lock_timeout tells that error apart)."""
        ...


class MigrationLock(Protocol):
    """What keeps two `migrate` runs on one database from upgrading at the same time."""

    def __call__(self, connection: Connection) -> None:
        """Called first in the migration's transaction on `connection`: returns once no other
        migration runs, and holds that until the transaction ends."""
        ...
