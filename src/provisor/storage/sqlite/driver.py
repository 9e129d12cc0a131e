"""SQLite's direct execution (storage/direct.py's contract, contracts.py `Driver`): compiled
statements sent straight to aiosqlite, or to sqlite3 on the event loop's own thread.

A read of a few rows by key runs on the loop's thread (`InlineSqliteReader`); other statements go
to a kept connection's thread; a write transaction is one call in that thread
(`write_in_sqlite_thread`), which waits there for the writers' gate, and the writes that queue
meanwhile share it, each in a savepoint. sqlite3 returns JSON columns as text: they are decoded
here.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import sqlite3
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from provisor.budget import Budget, Commit, TimedOut, current_budget
from provisor.storage.coalesce import MAX_BATCH, Failed
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
        self._gate = writer_gate(engine)
        if self._gate is not None:
            self._gate.checkpoints.resume()  # stopped if an earlier reader of the engine was closed
        #: Writes waiting for the next transaction, and whether one is under way (one at a time:
        #: SQLite has one writer).
        self._queued: deque[_Write] = deque()
        self._writing = False
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._write_calls = 0
        self._write_batches = 0
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
        """`write_in_sqlite_thread` for this engine: queued, then run in the next transaction."""
        write = _Write(steps, current_budget.get(), asyncio.get_running_loop().create_future())
        self._queued.append(write)
        self._write_calls += 1
        if not self._writing:
            self._next_batch()
        try:
            result: T = await write.future
        except asyncio.CancelledError:
            self._left_out(write)
            raise
        return result

    def _next_batch(self) -> None:
        """Start the queued writes' transaction (at most `MAX_BATCH` of them). Each enters its
        caller's budget now: from here its deadline no longer cancels the caller, it takes the
        write out of the batch (`_abandon`) for as long as the transaction has not started."""
        writes: list[_Write] = []
        deadline: float | None = None
        while self._queued and len(writes) < MAX_BATCH:
            write = self._queued.popleft()
            if write.future.done():  # its caller was cancelled while it waited
                continue
            budget = write.budget
            if budget is not None:
                commit = Commit()
                try:
                    budget.enter(commit)
                except TimedOut as exc:
                    write.future.set_exception(exc)
                    continue
                write.commit = commit
                ends = time.monotonic() + budget.remaining()
                deadline = ends if deadline is None else min(deadline, ends)
            writes.append(write)
        if not writes:
            return
        batch = _Batch(writes, deadline)
        for write in writes:
            write.batch = batch
            if write.commit is not None:
                write.commit.attach(functools.partial(self._abandon, write))
        self._writing = True
        self._write_batches += 1
        task = asyncio.get_running_loop().create_task(self._write_batch(batch))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    def _abandon(self, write: _Write) -> None:
        """The write's deadline passed (`Commit.abort`): out of its batch, and its caller told so,
        unless the transaction has started (the caller then waits for its outcome)."""
        if write.batch is not None and write.batch.leave_out(write):
            self._settle(write, TimedOut(write.budget.limit if write.budget else None), committed=False)

    def _left_out(self, write: _Write) -> None:
        """The caller was cancelled: a write not started yet is left out of its transaction."""
        if write.batch is not None and write.batch.leave_out(write):
            self._settle(write, None, committed=False)

    def _settle(self, write: _Write, outcome: Any, *, committed: bool) -> None:
        if write.commit is not None and write.budget is not None and not write.commit.settled:
            write.budget.leave(write.commit, committed)
        if write.future.done():
            return
        if isinstance(outcome, Failed):
            write.future.set_exception(outcome.error)
        elif isinstance(outcome, asyncio.CancelledError):  # the batch's task, at shutdown
            write.future.cancel()
        elif isinstance(outcome, BaseException):
            write.future.set_exception(outcome)
        else:
            write.future.set_result(outcome)

    async def _write_batch(self, batch: _Batch) -> None:
        """One hop to a kept connection's thread, which waits there for the writers' gate
        (storage/sqlite/gate.py), runs the transaction and lets the gate go right after COMMIT.
        Waiting in the loop instead took two more hops (the gate's thread to the loop, the loop to
        the connection's thread) while holding the gate, and the loop's delay in seeing the
        transaction's end: the gate was held twice as long as the transactions took."""
        raw: PoolProxiedConnection | None = None
        try:
            raw = await self._connection()
            driver: Any = raw.driver_connection
            # The gate's descriptor for this thread, opened on the first write (not by a reader of
            # a database whose folder it may not write to).
            gate = self._gate.thread_descriptor() if self._gate is not None else None
            finish = self._gate.checkpoints.finish_after_commit if self._gate is not None else None
            work = functools.partial(_run_batch, batch, gate, finish, raw.info)
            live, results = await driver._execute(work, driver._conn)
        except BaseException as exc:
            error = IntegrityError("", (), exc) if isinstance(exc, sqlite3.IntegrityError) else exc
            for write in batch.writes:
                if not write.left_out:
                    self._settle(write, error, committed=False)
            if raw is not None:
                if isinstance(exc, sqlite3.IntegrityError):
                    await self._release(raw)
                else:
                    await greenlet_spawn(raw.invalidate)
            if not isinstance(exc, Exception):
                raise
        else:
            await self._release(raw)
            for write, result in zip(live, results, strict=True):
                self._settle(write, result, committed=True)
        finally:
            self._writing = False
            if self._queued:
                self._next_batch()
            if self._gate is not None:
                self._gate.checkpoints.kick()

    def sqlite_write_counts(self) -> tuple[int, int]:
        """(writes, transactions) through `sqlite_write` so far."""
        return (self._write_calls, self._write_batches)

    def close(self) -> None:
        """With the engine (its checkpoints stop with it too: storage/sqlite/gate.py)."""
        super().close()
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
    thread for all of them, and a write that fails is rolled back alone. The thread waits for the
    gate itself and lets it go right after COMMIT; a write whose deadline passes before its
    transaction started is left out and its caller answered at once (`_Batch`).
    """
    result: T = await reader(engine).sqlite_write(steps)
    return result


class _Write:
    """A SQLite write, its caller's budget, and where its caller waits for it."""

    __slots__ = ("batch", "budget", "commit", "future", "left_out", "steps")

    def __init__(
        self, steps: Callable[[sqlite3.Connection], Any], budget: Budget | None, future: asyncio.Future[Any]
    ) -> None:
        self.steps = steps
        self.budget = budget
        self.future = future
        #: Set when its transaction is started on the loop (`_next_batch`).
        self.batch: _Batch | None = None
        self.commit: Commit | None = None
        #: Taken out of its batch before the transaction started (its caller gave up).
        self.left_out = False


class _Batch:
    """The writes of one transaction. Until the connection's thread has the gate and starts the
    transaction (`start`), a write can still be taken out (`leave_out`, on the loop); after, it
    runs. One mutex decides which came first, so a write answered as failed never commits."""

    __slots__ = ("deadline", "mutex", "started", "writes")

    def __init__(self, writes: list[_Write], deadline: float | None) -> None:
        self.writes = writes
        #: `time.monotonic()` at which the earliest of the callers' budgets ends (None: no budget).
        self.deadline = deadline
        self.mutex = threading.Lock()
        self.started = False

    def leave_out(self, write: _Write) -> bool:
        """Take `write` out unless the transaction started; whether it was taken out."""
        with self.mutex:
            if self.started or write.left_out:
                return False
            write.left_out = True
            return True

    def start(self) -> list[_Write]:
        """The writes left in, which now run."""
        with self.mutex:
            self.started = True
            return [write for write in self.writes if not write.left_out]

    def busy_ms(self) -> int:
        """SQLite's longest wait for its lock: what remains of the shortest budget, in 250 ms
        steps (so that it rarely changes between batches), at most `SQLITE_BUSY_MS`."""
        if self.deadline is None:
            return SQLITE_BUSY_MS
        left = int((self.deadline - time.monotonic()) * 4) * 250
        return max(1, min(SQLITE_BUSY_MS, left))


def _run_batch(
    batch: _Batch,
    gate: int | None,
    finish: Callable[[sqlite3.Connection], None] | None,
    info: dict[str, Any],
    db: sqlite3.Connection,
) -> tuple[list[_Write], list[Any]]:
    """In the connection's thread: wait for the writers' gate, then run the writes still in the
    batch as one transaction, each in a savepoint of its own when there are several, `finish` the
    WAL's checkpoint if it is due (storage/sqlite/checkpoint.py), and let the gate go. Returns the
    writes that ran and their results (`Failed` for one that failed alone)."""
    if gate is not None:
        fcntl.flock(gate, fcntl.LOCK_EX)
    try:
        live = batch.start()
        if not live:
            return live, []
        busy = batch.busy_ms()
        if info.get(_BUSY_KEY, SQLITE_BUSY_MS) != busy:
            db.execute(f"PRAGMA busy_timeout={busy}")
            info[_BUSY_KEY] = busy
        if len(live) == 1:
            results = [_one_transaction(live[0].steps)(db)]
        else:
            results = _savepoints([write.steps for write in live])(db)
        if finish is not None:
            finish(db)
        return live, results
    finally:
        if gate is not None:
            fcntl.flock(gate, fcntl.LOCK_UN)


#: Where a pooled SQLite connection's current busy timeout is remembered (its record's `info`).
_BUSY_KEY = "provisor_busy_ms"


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
    in its place, and rolls back only what it wrote.

    What a savepoint must restore is kept in memory (temp_store=MEMORY, which BEGIN reads): past
    SQLite's 64 KiB it went to a temporary file, created, written and deleted in each transaction,
    which under a burst of creates was half of the write calls (docs/performance.md). The setting
    goes back to the default after, so that a large sort of a read on this connection still uses
    a file."""

    def transaction(db: sqlite3.Connection) -> list[Any]:
        db.execute("PRAGMA temp_store=MEMORY")
        try:
            return _in_savepoints(db, batch)
        finally:
            db.execute("PRAGMA temp_store=DEFAULT")

    return transaction


def _in_savepoints(db: sqlite3.Connection, batch: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
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
