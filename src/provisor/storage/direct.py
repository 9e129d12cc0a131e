"""Hot statements, run on the database driver's own connection.

Every request reads a token, and most read or write one resource. Through SQLAlchemy's execution
layer each statement costs about 260 µs of CPU on PostgreSQL; the same compiled SQL sent straight to
asyncpg costs about 60 µs (measured; docs/performance.md). So the statements on those paths are
still written with SQLAlchemy Core, compiled once per dialect here, and then executed on the driver:

- `DirectReader.fetch`: outside any transaction (a single statement is atomic by itself), on one of
  a few connections kept between calls (checking one out of SQLAlchemy's pool costs another 50 µs);
  on SQLite, a read of a few rows by key runs on the event loop's own thread instead (see
  `InlineSqliteReader`);
- `DirectReader.fetch_batched`: the same, except that on PostgreSQL the calls of one statement that
  arrive while it is in flight go together as one round trip (storage/coalesce.py);
- `execute` / `execute_many`: inside the caller's SQLAlchemy transaction, on its connection;
- `DirectReader.in_sqlite_thread`: a whole SQLite transaction as one call in the connection's thread.

Kept connections are closed when the engine is disposed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
import urllib.parse
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from asyncpg.exceptions import IntegrityConstraintViolationError, InternalClientError, QueryCanceledError
from sqlalchemy import ARRAY, JSON, Integer, bindparam, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.util import greenlet_spawn

from provisor.budget import Budget, Commit, TimedOut, current_budget
from provisor.storage.coalesce import Batcher, Failed
from provisor.storage.engine import scim_lower
from provisor.storage.sqlite_gate import writer_gate

Row = Sequence[Any]
T = TypeVar("T")

#: Connections kept checked out for direct statements, per engine and dialect (the rest stay in
#: SQLAlchemy's pool). A statement that finds none kept borrows one from the pool and gives it back,
#: about 20 µs more of the worker's CPU each way. On PostgreSQL a worker therefore keeps as many
#: as it runs statements at once under load, up to 16 of its pool's 30: at 8 requests in flight per
#: worker, keeping 4 sent half the statements through the pool, and keeping 12 made creates 8-14%
#: faster (docs/performance.md). SQLite keeps 4 of its 5: each connection has a thread and a page cache.
KEEP_CONNECTIONS = {"postgresql": 16, "sqlite": 4}

#: SQLite's longest wait for the write lock outside a request (storage/engine.py sets it on connect).
SQLITE_BUSY_MS = 30000
#: The key under which a batched write carries its caller's `Budget` (not a statement parameter).
_BUDGET = "__budget"
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)

#: Reads of at most this many rows (a filter's page, a page's groups) count as reads by key.
BY_KEY_ROWS = 200


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...]  # positional parameter names
    defaults: Mapping[str, Any]  # values bound at build time (literals in the statement)
    processors: Mapping[str, Callable[[Any], Any]]  # e.g. JSON parameters serialised to text
    decode_json: tuple[int, ...]  # result columns the driver returns as JSON text
    call_index: int | None  # position of the `call` parameter (statements run by `fetch_batched`)
    writes: bool  # commits when run outside a transaction (provisor/budget.py)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name in self.order:
            if name in params:
                value = params[name]
                process = self.processors.get(name)
                out.append(process(value) if process is not None and value is not None else value)
            else:
                out.append(self.defaults[name])
        return out

    def decoded(self, rows: list[Row]) -> list[Row]:
        """`rows` with the JSON columns the driver returned as text decoded."""
        return [_decoded(row, self.decode_json) for row in rows] if self.decode_json else rows


#: The parameter a batched statement selects as its last column (storage/coalesce.py).
CALL = "call"


def call_column() -> BindParameter[Any]:
    """The `call` column of a batched statement: 0 for a lone call, the call's place in a batch."""
    return bindparam(CALL, 0, type_=Integer)


class DirectStatement:
    """A statement built once and compiled once per dialect, run by `DirectReader.fetch` (reads
    outside transactions) or by `execute` / `execute_many` (inside the caller's transaction)."""

    def __init__(
        self,
        statement: ClauseElement,
        *,
        lock_order: Callable[[Mapping[str, Any]], Any] | None = None,
        by_key: bool = False,
    ) -> None:
        """`lock_order`: for writes run by `fetch_batched`, the key a batch is sorted by so that
        concurrent batches lock rows in one order (storage/coalesce.py). `by_key`: a read of a few
        rows through an index, which SQLite may run on the event loop's thread (`fetch`)."""
        self.statement = statement
        self.lock_order = lock_order
        self.by_key = by_key
        selected = statement.selected_columns if isinstance(statement, Select | TextualSelect) else ()
        self.columns: tuple[str, ...] = tuple(str(c.key) for c in selected)
        self._json = tuple(i for i, c in enumerate(selected) if isinstance(c.type, JSON))
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            order = tuple(compiled.positiontup or ())
            defaults = {k: _processed(b, dialect) for k, b in compiled.binds.items() if b.value is not None}
            processors = {
                k: process for k, b in compiled.binds.items() if (process := _bind_processor(b, dialect))
            }
            # asyncpg decodes JSON with the codec SQLAlchemy registers; sqlite3 returns text.
            decode = self._json if dialect.name == "sqlite" else ()
            call = order.index(CALL) if CALL in order else None
            writes = bool(_WRITES.search(compiled.string))
            found = _Compiled(compiled.string, order, defaults, processors, decode, call, writes)
            self._compiled[dialect.name] = found
        return found


class DirectReader:
    """Runs `DirectStatement`s for one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        # Weak: the registry below is keyed weakly by the engine, and must not keep it alive.
        self._engine = weakref.ref(engine.sync_engine)
        self.dialect = engine.dialect
        self._kept: list[PoolProxiedConnection] = []
        self._sqlite = engine.dialect.name == "sqlite"
        self._keep = KEEP_CONNECTIONS["sqlite" if self._sqlite else "postgresql"]
        self._closed = False
        self._batchers: dict[DirectStatement, Batcher[Mapping[str, Any], list[Row]]] = {}
        self._sqlite_writes: Batcher[_Write, Any] | None = None
        self._gate = writer_gate(engine) if self._sqlite else None
        # A file database only: an in-memory one is private to the connection that made it.
        path = engine.url.database if self._sqlite and self._gate is not None else None
        self._inline = InlineSqliteReader(path) if path and not engine.url.query else None

    async def _connection(self) -> PoolProxiedConnection:
        while self._kept:
            raw = self._kept.pop()
            driver: Any = raw.driver_connection
            if self._sqlite or not driver.is_closed():
                return raw
            # The server closed it while it was kept (a restart, an idle timeout): asyncpg may have
            # left its protocol mid-error, which the next statement would meet as "another
            # operation is in progress" instead of a closed connection.
            await greenlet_spawn(raw.invalidate)
        engine = self._engine()
        if engine is None or self._closed:
            raise RuntimeError("the engine of this DirectReader was disposed")
        return await greenlet_spawn(engine.raw_connection)

    @asynccontextmanager
    async def _borrowed(self, commit: Commit | None = None) -> AsyncIterator[Any]:
        """A kept (or new) connection's driver. It goes back to the kept list afterwards, unless a
        statement broke off (cancelled mid-protocol, server gone): its state is then unknown and it
        is never reused. An integrity error fails the statement whole and leaves it fine. Nor is
        a connection reused after `commit` was aborted: a cancel request that arrives late would
        hit its next statement."""
        raw = await self._connection()
        try:
            yield raw.driver_connection
        except IntegrityError:
            if commit is not None and commit.aborted:
                await greenlet_spawn(raw.invalidate)
            else:
                await self._release(raw)
            raise
        except BaseException:
            await greenlet_spawn(raw.invalidate)
            raise
        if commit is not None and commit.aborted:
            await greenlet_spawn(raw.invalidate)
        else:
            await self._release(raw)

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
        if compiled.writes and not self._sqlite:
            budget = params[_BUDGET] if _BUDGET in params else current_budget.get()
            if budget is not None:
                try:
                    return await self._commit_one(compiled, args, budget)
                except InternalClientError as exc:
                    if not _never_sent(exc):
                        raise
                return await self._commit_one(compiled, args, budget)
        try:
            async with self._borrowed() as driver:
                return await _run(driver, self._sqlite, compiled, args)
        except InternalClientError as exc:
            if not _never_sent(exc):
                raise
        async with self._borrowed() as driver:  # once more, on another connection
            return await _run(driver, self._sqlite, compiled, args)

    async def _commit_one(self, compiled: _Compiled, args: list[Any], budget: Budget) -> list[Row]:
        """A write outside a transaction, within `budget`: it takes effect, or it does not and the
        caller is told so; never answered as failed while it may still commit (provisor/budget.py)."""
        commit = Commit()
        budget.enter(commit)
        committed = False
        try:
            async with self._borrowed(commit) as driver:
                commit.attach(lambda: cancel_statement(driver, commit))
                try:
                    rows = await _run(driver, False, compiled, args)
                    committed = True
                finally:
                    budget.leave(commit, committed)
            return rows
        except QueryCanceledError as exc:
            if commit.aborted:
                raise TimedOut(budget.limit) from exc
            raise

    def inline_counts(self) -> tuple[int, int]:
        """(reads run on the event loop's thread, reads that found SQLite busy and went to the
        connection's thread instead) so far; (0, 0) on PostgreSQL and in-memory SQLite."""
        return (self._inline.reads, self._inline.busy) if self._inline is not None else (0, 0)

    async def fetch_batched(
        self, statement: DirectStatement, params: Mapping[str, Any], *, by_key: bool | None = None
    ) -> list[Row]:
        """`fetch`, sharing a round trip with concurrent calls of `statement` on PostgreSQL.

        The statement must end its columns with `call_column()`. SQLite runs every call alone: its
        statements do not cross a network, and its writers queue on one lock anyway.
        """
        if self._sqlite:
            return await self.fetch(statement, params, by_key=by_key)
        batcher = self._batchers.get(statement)
        compiled = statement.compiled(self.dialect)
        if compiled.writes:  # the batch runs in a task of its own: the caller's budget goes along
            params = {**params, _BUDGET: current_budget.get()}
        if batcher is None:
            if compiled.call_index is None:
                raise ValueError("a batched statement must select the `call` parameter last")

            async def run_one(one: Mapping[str, Any]) -> list[Row]:
                return await self.fetch(statement, one)

            async def run_many(many: list[Mapping[str, Any]]) -> list[list[Row] | Failed]:
                return await self.fetch_many(statement, many)

            batcher = Batcher(run_one, run_many, lock_order=statement.lock_order, same_batch=_tenant_of)
            self._batchers[statement] = batcher
        return await batcher.fetch(params)

    async def fetch_many(
        self, statement: DirectStatement, params: Sequence[Mapping[str, Any]]
    ) -> list[list[Row] | Failed]:
        """Run `statement` once per parameter set in one round trip and one implicit transaction
        (asyncpg's `fetchmany`: all of them take effect or none); the rows of each, in order.

        A write is one commit for all of its callers' budgets: a caller whose deadline has passed
        is left out (`Failed`, it was already answered), and any caller's deadline passing while
        the batch is in flight aborts the batch in the database (the others are run again alone by
        storage/coalesce.py), so a batch never commits after one of its callers was answered."""
        compiled = statement.compiled(self.dialect)
        index = compiled.call_index
        assert index is not None and not self._sqlite
        out: list[list[Row] | Failed] = [[] for _ in params]
        commit = Commit()
        entered: list[Budget] = []
        places: list[int] = []
        batch: list[list[Any]] = []
        for place, one in enumerate(params):
            budget = one.get(_BUDGET) if compiled.writes else None
            if budget is not None:
                try:
                    budget.enter(commit)
                except TimedOut as exc:
                    out[place] = Failed(exc)
                    continue
                entered.append(budget)
            args = compiled.args(one)
            args[index] = len(batch)
            places.append(place)
            batch.append(args)
        committed = False
        try:
            if not batch:
                return out
            async with self._borrowed(commit if entered else None) as driver:
                commit.attach(lambda: cancel_statement(driver, commit))
                try:
                    rows = await driver.fetchmany(compiled.sql, batch)
                    committed = True
                except _INTEGRITY_ERRORS as exc:
                    raise IntegrityError(compiled.sql, batch, exc) from exc
                finally:
                    for budget in entered:
                        budget.leave(commit, committed)
                    entered = []
        finally:
            for budget in entered:  # the connection could not be had: nothing was sent
                budget.leave(commit, False)
        for row in rows:
            found = out[places[row[-1]]]
            assert not isinstance(found, Failed)
            found.append(row)
        return out

    async def sqlite_write(self, steps: Callable[[sqlite3.Connection], T]) -> T:
        """`write_in_sqlite_thread` for this engine."""
        assert self._sqlite
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

    def batch_counts(self, statement: DirectStatement) -> tuple[int, int]:
        """(calls, round trips) of `statement` through `fetch_batched` so far."""
        batcher = self._batchers.get(statement)
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
        assert self._sqlite
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

    async def _release(self, raw: PoolProxiedConnection) -> None:
        if self._closed:  # the engine was disposed while this statement ran
            await greenlet_spawn(raw.invalidate)
        elif len(self._kept) < self._keep:
            self._kept.append(raw)
        else:
            await greenlet_spawn(raw.close)

    def close(self) -> None:
        """Close the kept connections (called from `Engine.dispose`, inside SQLAlchemy's greenlet)."""
        self._closed = True
        for batcher in self._batchers.values():
            batcher.close(RuntimeError("the engine of this DirectReader was disposed"))
        kept, self._kept = self._kept, []
        for raw in kept:
            raw.invalidate()
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


async def execute(conn: AsyncConnection, statement: DirectStatement, params: Mapping[str, Any]) -> list[Row]:
    """Run `statement` inside `conn`'s transaction; rows for SELECT or RETURNING, else []."""
    compiled = statement.compiled(conn.dialect)
    driver = await _driver_in_transaction(conn)
    return await _run(driver, conn.dialect.name == "sqlite", compiled, compiled.args(params))


async def _run(driver: Any, sqlite: bool, compiled: _Compiled, args: list[Any]) -> list[Row]:
    """One statement on a driver connection: integrity errors as SQLAlchemy's, JSON decoded."""
    try:
        if sqlite:
            rows: list[Row] = list(await driver.execute_fetchall(compiled.sql, args))
        else:
            rows = await driver.fetch(compiled.sql, *args)
    except _INTEGRITY_ERRORS as exc:
        raise IntegrityError(compiled.sql, args, exc) from exc
    return compiled.decoded(rows)


async def execute_many(
    conn: AsyncConnection, statement: DirectStatement, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run `statement` once per parameter set, inside `conn`'s transaction (pipelined on asyncpg)."""
    if not rows:
        return
    compiled = statement.compiled(conn.dialect)
    driver = await _driver_in_transaction(conn)
    args = [compiled.args(params) for params in rows]
    try:
        await driver.executemany(compiled.sql, args)
    except _INTEGRITY_ERRORS as exc:
        raise IntegrityError(compiled.sql, args, exc) from exc


async def copy_rows(
    conn: AsyncConnection, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
) -> None:
    """PostgreSQL: append `records` with binary `COPY` inside `conn`'s transaction. For rows written
    in batches (the request log, Bulk and import): a COPY skips the executor start-up that every
    pipelined INSERT pays per row. A constraint violation raises SQLAlchemy's IntegrityError, as
    an INSERT would; JSON columns take JSON text."""
    if not records:
        return
    driver = await _driver_in_transaction(conn)
    try:
        await driver.copy_records_to_table(table, records=records, columns=list(columns))
    except _INTEGRITY_ERRORS as exc:
        raise IntegrityError(f"COPY {table}", (), exc) from exc


async def _driver_in_transaction(conn: AsyncConnection) -> Any:
    """The driver connection behind `conn`, with its transaction open on the server.

    SQLite: `BEGIN` was sent when the transaction began (storage/engine.py). SQLAlchemy's asyncpg
    adapter sends it lazily, before its first statement, so it is opened here if no statement ran
    yet (a private method; tests/db/test_direct.py fails if that contract changes).
    """
    raw = await conn.get_raw_connection()
    if conn.dialect.name == "postgresql" and conn.in_transaction():
        adapted: Any = raw.dbapi_connection
        if adapted._transaction is None:
            await adapted._start_transaction()
    return raw.driver_connection


_INTEGRITY_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.IntegrityError,
    IntegrityConstraintViolationError,
)


def _tenant_of(params: Mapping[str, Any]) -> Any:
    """Batches keep to one tenant (storage/coalesce.py): on a PostgreSQL distributed by tenant a
    batch is then a transaction on one node."""
    return params.get("tenant_id")


def _bind_processor(bind: BindParameter[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """What a parameter's value goes through before the driver sees it.

    SQLAlchemy's own processors are kept except where they only cost time on this path (about
    10 µs for a user document, 1-3 µs per array, on every write): a JSON value is serialised by
    the engine's serializer directly (values here are never SQLAlchemy's JSON.NULL sentinels, and
    None means SQL NULL, see `_Compiled.args`), and an array of plain items goes to asyncpg as the
    list it is.
    """
    if isinstance(bind.type, JSON):
        serializer: Callable[[Any], str] | None = getattr(dialect, "_json_serializer", None)
        if serializer is not None:
            return serializer
    if isinstance(bind.type, ARRAY) and dialect.name == "postgresql":
        item = bind.type.item_type.dialect_impl(dialect).bind_processor(dialect)
        if item is None:
            return None
    processor: Callable[[Any], Any] | None = bind.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _processed(bind: BindParameter[Any], dialect: Dialect) -> Any:
    """A value fixed at build time, as the dialect sends it (e.g. a JSON path on SQLite)."""
    process = bind.type.dialect_impl(dialect).bind_processor(dialect)
    return process(bind.value) if process else bind.value


def _decoded(row: Row, columns: tuple[int, ...]) -> Row:
    values = list(row)
    for i in columns:
        if isinstance(values[i], (str, bytes)):
            values[i] = orjson.loads(values[i])
    return values


_readers: weakref.WeakKeyDictionary[Engine, DirectReader] = weakref.WeakKeyDictionary()


def reader(engine: AsyncEngine) -> DirectReader:
    """The engine's DirectReader, created on first use."""
    found = _readers.get(engine.sync_engine)
    if found is None:
        found = DirectReader(engine)
        _readers[engine.sync_engine] = found
        if not event.contains(engine.sync_engine, "engine_disposed", _on_dispose):
            event.listen(engine.sync_engine, "engine_disposed", _on_dispose)
    return found


def _on_dispose(engine: Engine) -> None:
    found = _readers.pop(engine, None)
    if found is not None:
        found.close()


async def write_in_sqlite_thread(engine: AsyncEngine, steps: Callable[[sqlite3.Connection], T]) -> T:
    """`steps` inside BEGIN IMMEDIATE ... COMMIT as one call in the connection's thread, queued
    behind the other writers (storage/sqlite_gate.py). Any exception rolls it back.

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


def _never_sent(exc: InternalClientError) -> bool:
    """Whether asyncpg refused to start the statement because the connection's protocol was not
    idle: the server closed the connection while it was idle and kept (a FATAL message on a restart
    leaves asyncpg's protocol mid-error until the close itself is read). The statement never left,
    so it is safe to run again on another connection (the failed one is invalidated)."""
    return "cannot switch to state" in str(exc)


#: Seconds between cancel requests for one commit (see `cancel_statement`).
CANCEL_EVERY = 0.2


def cancel_statement(driver: Any, commit: Commit) -> None:
    """Ask PostgreSQL to cancel the statement running on `driver` (asyncpg's CancelRequest, sent
    on a connection of its own) until `commit` has settled: the statement then fails with
    QueryCanceledError unless it had already committed. A cancel request that arrives while the
    backend is between messages (the statement not yet sent, or its Parse done and its Execute
    not) is ignored by PostgreSQL, hence the repetition; the connection is not reused afterwards
    (`DirectReader._borrowed`). (asyncpg's `_cancel_current_command` is private: tests/faults
    cover it.)"""
    loop = asyncio.get_running_loop()

    async def keep_cancelling() -> None:
        while not commit.settled and not driver.is_closed():
            driver._cancel_current_command(loop.create_future())
            await asyncio.sleep(CANCEL_EVERY)

    task = loop.create_task(keep_cancelling())
    _cancelling.add(task)
    task.add_done_callback(_cancelling.discard)


#: Running `cancel_statement` loops (a task needs a reference until it ends).
_cancelling: set[asyncio.Task[None]] = set()


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
