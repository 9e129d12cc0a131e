"""The per-database contracts: what storage/postgres/ and storage/sqlite/ each implement.

Each Protocol is one field of their `Backend` (storage/backend.py). The portable modules call
these parts and never name a database; mypy checks both implementations against the Protocols
where each package builds its `Backend`. This module imports only building blocks (statements,
rows), never storage/kind.py, so the per-database packages can import it without a cycle. The
service-facing contract is storage/interfaces/. The portable modules that call these parts
(storage/resources.py, consumers.py, snapshot.py, migrate.py, ...) import storage/kind.py; this
module and the implementations must not, or the imports would cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sqlalchemy import Column, ColumnElement, Select, Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.util import ClauseAdapter

from provisor.budget import Budget, Commit
from provisor.events.model import EventOp
from provisor.storage.resource_rows import IndexRow, StoredResource
from provisor.storage.statements import Compiled, DirectStatement, Row

# The engine.


class EngineFactory(Protocol):
    """Builds the engine for a URL of this kind (storage/engine.py `create_engine` dispatches)."""

    def create_engine(self, url: str, *, pool_size: int) -> AsyncEngine:
        """The engine, with the driver and the settings every connection of this kind gets."""
        ...


# Resources and the driver.


class DirectReader(Protocol):
    """Runs `DirectStatement`s for one engine outside any transaction, on driver connections kept
    between calls (storage/direct.py `reader`). A single statement is atomic by itself; one that
    writes commits when it returns, within the caller's budget (provisor/budget.py): it takes effect,
    or it does not and the caller is told so. Integrity errors are SQLAlchemy's `IntegrityError`;
    JSON columns come back decoded."""

    dialect: Dialect

    async def fetch(
        self, statement: DirectStatement, params: Mapping[str, Any], *, by_key: bool | None = None
    ) -> list[Row]:
        """The statement's rows. `by_key` (default: the statement's own): a read of a few rows
        through an index, which the database may serve without leaving the event loop's thread."""
        ...

    async def fetch_batched(
        self, statement: DirectStatement, params: Mapping[str, Any], *, by_key: bool | None = None
    ) -> list[Row]:
        """`fetch`, possibly sharing a round trip and a commit with concurrent calls of `statement`
        (storage/coalesce.py); the statement ends its columns with `call_column()`."""
        ...

    def batch_counts(self, statement: DirectStatement) -> tuple[int, int]:
        """(calls, round trips) of `statement` through `fetch_batched` so far."""
        ...

    def inline_counts(self) -> tuple[int, int]:
        """(reads run on the event loop's thread, reads that found the database busy) so far."""
        ...

    def sqlite_write_counts(self) -> tuple[int, int]:
        """(writes, transactions) of SQLite's one-call writes so far; (0, 0) elsewhere."""
        ...

    def close(self) -> None:
        """Close the kept connections (the engine is disposed)."""
        ...


class Driver(Protocol):
    """Direct execution on the database's own driver (storage/direct.py)."""

    #: The most driver connections a reader keeps checked out between calls.
    KEEP_CONNECTIONS: int

    def reader(self, engine: AsyncEngine) -> DirectReader:
        """The engine's reader, made on first use; closed when the engine is disposed."""
        ...

    async def execute(self, conn: AsyncConnection, compiled: Compiled, args: list[Any]) -> list[Row]:
        """One statement inside `conn`'s transaction (opened on the server if it was not yet):
        rows for SELECT or RETURNING, else []; integrity errors as SQLAlchemy's."""
        ...

    async def execute_many(self, conn: AsyncConnection, compiled: Compiled, args: list[list[Any]]) -> None:
        """The statement once per argument list, inside `conn`'s transaction."""
        ...


class WriteTransactions(Protocol):
    """How storage/transactions.py opens, commits and aborts a transaction on this database."""

    def writers_queue(self, engine: AsyncEngine) -> AbstractAsyncContextManager[Any]:
        """Held around a write transaction: where the writers of all workers wait their turn
        (SQLite's one write lock), or a no-op."""
        ...

    async def for_writing(self, conn: AsyncConnection, budget: Budget | None) -> AsyncConnection:
        """`conn` set up so that its next BEGIN starts a write transaction (taking the write lock
        up front, waiting for it at most what remains of `budget`)."""
        ...

    async def abort_on_deadline(self, conn: AsyncConnection, commit: Commit) -> None:
        """Let `commit` (a COMMIT about to be sent on `conn`) be aborted in the database when the
        deadline passes, or do nothing where a COMMIT cannot outlast it."""
        ...

    async def autocommit(self, conn: AsyncConnection) -> AsyncConnection:
        """`conn` running each statement outside any transaction."""
        ...


class ResourceStatements(Protocol):
    """One database's statements and writes of resources (storage/resources.py dispatches to it).

    The writes are atomic with the resource's index rows and its event, and raise storage's own
    errors (`ResourceWrites`); the statements select `resource_rows.ROW_COLUMNS` first.
    """

    #: One resource by key inside a write transaction, holding its row until the end (where the
    #: transaction already holds the database's write lock: the plain read).
    LOCK: DirectStatement
    #: The same with the groups directly containing it (resource_rows.READ_WITH_GROUPS's rows).
    LOCK_WITH_GROUPS: DirectStatement
    #: `attr eq "value"` on an indexed attribute: a page in the default order (created, id), its
    #: count, and the page with each resource's direct groups; driven from the index row, whatever
    #: the statistics say.
    LIST_BY_INDEXED_VALUE: DirectStatement
    COUNT_BY_INDEXED_VALUE: DirectStatement
    LIST_BY_INDEXED_VALUE_WITH_GROUPS: DirectStatement

    async def create_at_once(
        self,
        engine: AsyncEngine,
        *,
        tenant_id: str,
        stored: StoredResource,
        index: Sequence[IndexRow],
        actor: str | None,
        event_payload: dict[str, Any],
    ) -> None:
        """`ResourceWrites.create_at_once`: without a transaction of the caller's."""
        ...

    async def update_at_once(
        self,
        engine: AsyncEngine,
        tenant_id: str,
        *,
        current: StoredResource,
        stored: StoredResource,
        added: Sequence[IndexRow],
        gone: Sequence[IndexRow],
        op: EventOp,
        actor: str | None,
        event_payload: dict[str, Any],
    ) -> bool:
        """`stored` (the version after `current`) with the index rows `added` and without those
        `gone` (no value in both), and its `op` event, atomically and without a transaction of the
        caller's, if `current` is still the stored version (else False, nothing written). A
        unique index violation raises SQLAlchemy's IntegrityError (the caller names the
        attributes)."""
        ...

    def driven(
        self,
        driver: Select[Any],
        scope: Sequence[ColumnElement[bool]],
        conditions: Sequence[ColumnElement[bool]],
    ) -> tuple[Select[Any], ClauseAdapter | None]:
        """A select of the resources in `scope` (tenant and type) matching `conditions` whose ids
        `driver` (an index range) yields, starting from that range and fetching each resource by
        primary key, whatever the statistics say; no columns yet. With it the adapter mapping
        expressions over `resources` onto the select (None: they apply as they are)."""
        ...

    def unfiltered_page(
        self,
        tenant_id: str,
        resource_type: str,
        order_by: Sequence[ColumnElement[Any]],
        keys: list[Column[Any]],
        offset: int,
        limit: int,
    ) -> Select[Any] | None:
        """A page of all the tenant's resources of the type, ordered by index columns `keys`,
        where this database reads it faster than the plain query (None: it does not)."""
        ...


# The small parts: upserts, the snapshot view, the migration lock.


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


class SignalWatch(Protocol):
    """One worker's view of a database's token-change signal (storage/auth_cache.py)."""

    def changed(self) -> bool:
        """Whether tokens or tenants may have changed since the last call (True when unsure)."""
        ...

    def recheck(self) -> None:
        """Find the signal again if it was replaced (called when the worker's cache lapses)."""
        ...

    def close(self) -> None: ...


class TokenSignal(Protocol):
    """How workers hear of changes to tokens and tenants where there is no LISTEN/NOTIFY."""

    def watch(self, engine: AsyncEngine) -> SignalWatch | None:
        """The engine's signal, open; None when there is none (the token cache stays off)."""
        ...

    def announce(self, engine: AsyncEngine) -> bool:
        """Tell every worker of a committed change; False when that could not be done."""
        ...
