"""SQLite's direct execution (storage/direct.py's contract, contracts.py `Driver`): compiled
statements sent straight to aiosqlite, or to sqlite3 on the event loop's own thread.

A read of a few rows by key runs on the loop's thread (`InlineSqliteReader`); other statements go
to a kept connection's thread; a write transaction is one call in that thread
(`write_in_sqlite_thread`), and the writes that queue meanwhile share it, each in a savepoint.
sqlite3 returns JSON columns as text: they are decoded here.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from provisor.budget import Budget, Commit, TimedOut, current_budget
from provisor.storage.coalesce import Batcher, Failed
from provisor.storage.connections import KeptConnections, Readers
from provisor.storage.sqlite.engine import scim_lower
from provisor.storage.sqlite.gate import writer_gate
from provisor.storage.statements import Compiled, DirectStatement, Row

T = TypeVar("T")

#: Connections kept checked out per engine: 4 of its pool's 5 (each has a thread and a page cache).
KEEP_CONNECTIONS = 4

#: SQLite's longest wait for the write lock outside a request (storage/sqlite/engine.py sets it on connect).
SQLITE_BUSY_MS = 30000


class SqliteReader(KeptConnections):
    """Runs `DirectStatement`s for one SQLite engine (contracts.py `DirectReader`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, KEEP_CONNECTIONS)
        self._sqlite_writes: Batcher[_Write, Any] | None = None
        self._gate = writer_gate(engine)
        # A file database only: an in-memory one is private to the connection that made it.
        path = engine.url.database if self._gate is not None else None
        self._inline = InlineSqliteReader(path) if path and not engine.url.query else None

    async def fetch(
        self, statement: DirectStatement, params: Mapping[str, Any], *, by_key: bool | None = None
    ) -> list[Row]:
        """`by_key` overrides the statement's own (a call that knows it reads a few rows)."""
        compiled = statement.compiled(self.dialect)
        args = compiled.args(params)
        if self._inline is not None and (statement.by_key if by_key is None else by_key):
            rows = self._inline.fetch(compiled.sql, args)
            if rows is not None:
                return compiled.decoded(rows)
        async with self._borrowed() as driver:
            return await _run(driver, compiled, args)

    async def fetch_batched(
        self, statement: DirectStatement, params: Mapping[str, Any], *, by_key: bool | None = None
    ) -> list[Row]:
        """`fetch`: SQLite runs every call alone. Its statements do not cross a network, and its
        writers queue on one lock anyway."""
        return await self.fetch(statement, params, by_key=by_key)

    def inline_counts(self) -> tuple[int, int]:
        """(reads run on the event loop's thread, reads that found SQLite busy and went to the
        connection's thread instead) so far; (0, 0) for an in-memory database."""
        return (self._inline.reads, self._inline.busy) if self._inline is not None else (0, 0)

    def batch_counts(self, statement: DirectStatement) -> tuple[int, int]:
        return (0, 0)

    async def sqlite_write(self, steps: Callable[[sqlite3.Connection], T]) -> T:
        """`write_in_sqlite_thread` for this engine."""
        if self._sqlite_writes is None:
            self._sqlite_writes = Batcher(self._write_alone, self._write_together)
        result: T = await self._sqlite_writes.fetch(_Write(steps, current_budget.get()))
        return result

    async def _write_alone(self, write: _Write) -> Any:
        out = await self._write_together([write])
        if isinstance(out[0], Failed):
            raise out[0].error
        return out[0]

    async def _write_together(self, batch: list[_Write]) -> list[Any]:
        """The writes of `batch` as one transaction, once the writers' gate is ours (waiting for it
        writes nothing, so a deadline may cancel that wait). Writes whose callers' deadlines passed
        meanwhile are left out; the others enter their budgets, and SQLite waits for its lock at
        most what remains of the shortest of them, so the transaction ends by the deadline."""
        async with self._gate if self._gate is not None else contextlib.nullcontext():
            out: list[Any] = [None] * len(batch)
            commit = Commit()
            entered: list[Budget] = []
            live: list[int] = []
            busy = SQLITE_BUSY_MS
            for place, write in enumerate(batch):
                if write.budget is not None:
                    try:
                        write.budget.enter(commit)
                    except TimedOut as exc:
                        out[place] = Failed(exc)
                        continue
                    entered.append(write.budget)
                    busy = min(busy, write.budget.busy_ms(SQLITE_BUSY_MS))
                live.append(place)
            if not live:
                return out
            committed = False
            try:
                if len(live) == 1:
                    results = [await self.in_sqlite_thread(_one_transaction(batch[live[0]].steps), busy)]
                else:
                    results = await self.in_sqlite_thread(_savepoints([batch[p].steps for p in live]), busy)
                committed = True
            finally:
                for budget in entered:
                    budget.leave(commit, committed)
            for place, result in zip(live, results, strict=True):
                out[place] = result
            return out

    def sqlite_write_counts(self) -> tuple[int, int]:
        """(writes, transactions) through `sqlite_write` so far."""
        batcher = self._sqlite_writes
        return (batcher.calls, batcher.batches) if batcher else (0, 0)

    async def in_sqlite_thread(
        self, work: Callable[[sqlite3.Connection], T], busy_ms: int | None = None
    ) -> T:
        """Run `work` on a kept SQLite connection, in that connection's thread, in one hop.

        A write as separate statements crosses to aiosqlite's thread and back per statement
        while holding SQLite's single write lock; as one call it holds the lock for one crossing.
        (aiosqlite's `_execute` and `_conn` are private: every SQLite create and PATCH test runs here.)
        `busy_ms`: the longest wait for the write lock (SQLite's busy timeout), set in the same hop
        when the connection's differs.
        """
        raw = await self._connection()
        try:
            driver: Any = raw.driver_connection
            if busy_ms is not None and raw.info.get(_BUSY_KEY, SQLITE_BUSY_MS) != busy_ms:
                work = _with_busy_timeout(work, busy_ms)
                raw.info[_BUSY_KEY] = busy_ms
            result: T = await driver._execute(work, driver._conn)
        except sqlite3.IntegrityError as exc:
            await self._release(raw)
            raise IntegrityError("", (), exc) from exc
        except BaseException:
            await greenlet_spawn(raw.invalidate)
            raise
        await self._release(raw)
        return result

    def close(self) -> None:
        super().close()
        if self._gate is not None:
            self._gate.checkpoints.stop()
        if self._inline is not None:
            self._inline.close()


class InlineSqliteReader:
    """Reads of a few rows by key on a SQLite connection of the event loop's own thread.

    Through aiosqlite every statement crosses to the connection's thread and back: a queue put,
    a wake-up of that thread, and a wake-up of the loop through its self-pipe. For a read by
    primary key that crossing costs the worker more CPU than SQLite's own work (tens of µs), and
    a SQLite GET paid it twice (token, then resource). In WAL mode a reader never waits for a
    writer, so such a read cannot hold up the loop; with `busy_timeout=0` the rare case that
    does wait (another process recovering the WAL, an exclusive lock taken outside Provisor)
    returns None at once and the caller takes the thread path, which waits as any other.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.reads = 0
        self.busy = 0
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            # mode=rw: never create a database file that is not there; query_only: reads alone.
            uri = "file:" + urllib.parse.quote(self.path) + "?mode=rw"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            db.create_function("scim_lower", 1, scim_lower, deterministic=True)
            db.execute("PRAGMA busy_timeout=0")
            db.execute("PRAGMA query_only=ON")
            self._db = db
        return self._db

    def fetch(self, sql: str, args: Sequence[Any]) -> list[Row] | None:
        """The rows, or None if SQLite was busy."""
        try:
            rows: list[Row] = self._connection().execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            self.busy += 1
            return None
        self.reads += 1
        return rows

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


READERS = Readers(SqliteReader)
#: The engine's reader, made on first use (the registry's own method: one call less on every
#: statement).
reader = READERS.of


async def execute(conn: AsyncConnection, compiled: Compiled, args: list[Any]) -> list[Row]:
    """One statement inside `conn`'s transaction (`BEGIN` was sent when it began:
    storage/sqlite/engine.py)."""
    raw = await conn.get_raw_connection()
    return await _run(raw.driver_connection, compiled, args)


async def execute_many(conn: AsyncConnection, compiled: Compiled, args: list[list[Any]]) -> None:
    """The statement once per argument list, inside `conn`'s transaction."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    try:
        await driver.executemany(compiled.sql, args)
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(compiled.sql, args, exc) from exc


async def _run(driver: Any, compiled: Compiled, args: list[Any]) -> list[Row]:
    """One statement on an aiosqlite connection: integrity errors as SQLAlchemy's, JSON decoded."""
    try:
        rows: list[Row] = list(await driver.execute_fetchall(compiled.sql, args))
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(compiled.sql, args, exc) from exc
    return compiled.decoded(rows)


async def write_in_sqlite_thread(engine: AsyncEngine, steps: Callable[[sqlite3.Connection], T]) -> T:
    """`steps` inside BEGIN IMMEDIATE ... COMMIT as one call in the connection's thread, queued
    behind the other writers (storage/sqlite/gate.py). Any exception rolls it back.

    The writes of this process that queue meanwhile go together into the next transaction, each
    in a savepoint of its own: one pass through the writers' gate and one hop to the connection's
    thread for all of them, and a write that fails is rolled back alone (storage/coalesce.py).
    """
    result: T = await reader(engine).sqlite_write(steps)
    return result


@dataclass(frozen=True, slots=True)
class _Write:
    """A SQLite write and its caller's budget (the batch runs in a task of its own)."""

    steps: Callable[[sqlite3.Connection], Any]
    budget: Budget | None


#: Where a pooled SQLite connection's current busy timeout is remembered (its record's `info`).
_BUSY_KEY = "provisor_busy_ms"


def _with_busy_timeout(
    work: Callable[[sqlite3.Connection], T], busy_ms: int
) -> Callable[[sqlite3.Connection], T]:
    def with_timeout(db: sqlite3.Connection) -> T:
        db.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        return work(db)

    return with_timeout


def _commit(db: sqlite3.Connection) -> None:
    """COMMIT; when it fails (a full disk, an I/O error) SQLite may leave the transaction open:
    roll it back, so that nothing of it stays behind on this connection."""
    try:
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _one_transaction(steps: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    def transaction(db: sqlite3.Connection) -> T:
        db.execute("BEGIN IMMEDIATE")
        try:
            result = steps(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        _commit(db)
        return result

    return transaction


def _savepoints(
    batch: list[Callable[[sqlite3.Connection], Any]],
) -> Callable[[sqlite3.Connection], list[Any]]:
    """One transaction running each of `batch` in its own savepoint; a failing one leaves `Failed`
    in its place, and rolls back only what it wrote."""

    def transaction(db: sqlite3.Connection) -> list[Any]:
        db.execute("BEGIN IMMEDIATE")
        out: list[Any] = []
        try:
            for steps in batch:
                db.execute("SAVEPOINT provisor_call")
                try:
                    out.append(steps(db))
                except Exception as exc:
                    db.execute("ROLLBACK TO provisor_call")
                    if isinstance(exc, sqlite3.IntegrityError):
                        exc = IntegrityError("", (), exc)
                    out.append(Failed(exc))
                db.execute("RELEASE provisor_call")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        _commit(db)
        return out

    return transaction
