"""PostgreSQL's direct execution (storage/direct.py's contract, contracts.py `Driver`): compiled
statements sent straight to asyncpg.

Through SQLAlchemy's execution layer each statement costs about 260 µs of CPU; the same compiled
SQL sent to asyncpg costs about 60 µs (measured; docs/performance.md). Outside a transaction a
statement runs on one of the connections kept between calls, and concurrent calls of one statement
share a round trip (`fetch_batched`, storage/coalesce.py). A write outside a transaction commits
within its caller's budget: a deadline passing while it is in flight cancels it in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from asyncpg.exceptions import IntegrityConstraintViolationError, InternalClientError, QueryCanceledError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from provisor.budget import Budget, Commit, TimedOut, current_budget
from provisor.storage.coalesce import Batcher, Failed
from provisor.storage.connections import KeptConnections, Readers
from provisor.storage.statements import Compiled, DirectStatement, Row

#: Connections kept checked out for direct statements per engine (the rest stay in SQLAlchemy's
#: pool). A statement that finds none kept borrows one from the pool and gives it back, about 20 µs
#: more of the worker's CPU each way. A worker therefore keeps as many as it runs statements at
#: once under load, up to 16 of its pool's 30: at 8 requests in flight per worker, keeping 4 sent
#: half the statements through the pool, and keeping 12 made creates 8-14% faster
#: (docs/performance.md). A smaller pool (`PROVISOR_DATABASE_POOL_SIZE`) keeps at most its size,
#: so that its burst connections always remain for transactions.
KEEP_CONNECTIONS = 16

#: The key under which a batched write carries its caller's `Budget` (not a statement parameter).
_BUDGET = "__budget"

_INTEGRITY_ERRORS = IntegrityConstraintViolationError


class PostgresReader(KeptConnections):
    """Runs `DirectStatement`s for one PostgreSQL engine (contracts.py `DirectReader`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        pool = engine.sync_engine.pool
        assert isinstance(pool, QueuePool)  # storage/postgres/engine.py sizes one
        super().__init__(engine, min(KEEP_CONNECTIONS, pool.size()))
        self._batchers: dict[DirectStatement, Batcher[Mapping[str, Any], list[Row]]] = {}

    def _usable(self, raw: PoolProxiedConnection) -> bool:
        # The server closed it while it was kept (a restart, an idle timeout): asyncpg may have
        # left its protocol mid-error, which the next statement would meet as "another
        # operation is in progress" instead of a closed connection.
        driver: Any = raw.driver_connection
        return not driver.is_closed()

    async def fetch(
        self, statement: DirectStatement, params: Mapping[str, Any], *, by_key: bool | None = None
    ) -> list[Row]:
        """`by_key` is the contract's: PostgreSQL reads every statement on a kept connection."""
        compiled = statement.compiled(self.dialect)
        args = compiled.args(params)
        if compiled.writes:
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
                return await _run(driver, compiled, args)
        except InternalClientError as exc:
            if not _never_sent(exc):
                raise
        async with self._borrowed() as driver:  # once more, on another connection
            return await _run(driver, compiled, args)

    async def _commit_one(self, compiled: Compiled, args: list[Any], budget: Budget) -> list[Row]:
        """A write outside a transaction, within `budget`: it takes effect, or it does not and the
        caller is told so; never answered as failed while it may still commit (provisor/budget.py)."""
        commit = Commit()
        budget.enter(commit)
        committed = False
        try:
            async with self._borrowed(commit) as driver:
                commit.attach(lambda: cancel_statement(driver, commit))
                try:
                    rows = await _run(driver, compiled, args)
                    committed = True
                finally:
                    budget.leave(commit, committed)
            return rows
        except QueryCanceledError as exc:
            if commit.aborted:
                raise TimedOut(budget.limit) from exc
            raise

    def inline_counts(self) -> tuple[int, int]:
        return (0, 0)

    def sqlite_write_counts(self) -> tuple[int, int]:
        return (0, 0)

    async def fetch_batched(
        self, statement: DirectStatement, params: Mapping[str, Any], *, by_key: bool | None = None
    ) -> list[Row]:
        """`fetch`, sharing a round trip with concurrent calls of `statement`.

        The statement must end its columns with `call_column()`.
        """
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
        assert index is not None
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

    def batch_counts(self, statement: DirectStatement) -> tuple[int, int]:
        batcher = self._batchers.get(statement)
        return (batcher.calls, batcher.batches) if batcher else (0, 0)

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close(RuntimeError("the engine of this DirectReader was disposed"))
        super().close()


READERS = Readers(PostgresReader)
#: The engine's reader, made on first use (the registry's own method: one call less on every
#: statement).
reader = READERS.of


async def execute(conn: AsyncConnection, compiled: Compiled, args: list[Any]) -> list[Row]:
    """One statement inside `conn`'s transaction."""
    return await _run(await _driver_in_transaction(conn), compiled, args)


async def execute_many(conn: AsyncConnection, compiled: Compiled, args: list[list[Any]]) -> None:
    """The statement once per argument list, pipelined, inside `conn`'s transaction."""
    driver = await _driver_in_transaction(conn)
    try:
        await driver.executemany(compiled.sql, args)
    except _INTEGRITY_ERRORS as exc:
        raise IntegrityError(compiled.sql, args, exc) from exc


async def _run(driver: Any, compiled: Compiled, args: list[Any]) -> list[Row]:
    """One statement on an asyncpg connection (which decodes JSON itself): integrity errors as
    SQLAlchemy's."""
    try:
        rows: list[Row] = await driver.fetch(compiled.sql, *args)
    except _INTEGRITY_ERRORS as exc:
        raise IntegrityError(compiled.sql, args, exc) from exc
    return rows


async def copy_rows(
    conn: AsyncConnection, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
) -> None:
    """Append `records` with binary `COPY` inside `conn`'s transaction. For rows written in batches
    (the request log, Bulk and import): a COPY skips the executor start-up that every pipelined
    INSERT pays per row. A constraint violation raises SQLAlchemy's IntegrityError, as an INSERT
    would; JSON columns take JSON text."""
    if not records:
        return
    driver = await _driver_in_transaction(conn)
    try:
        await driver.copy_records_to_table(table, records=records, columns=list(columns))
    except _INTEGRITY_ERRORS as exc:
        raise IntegrityError(f"COPY {table}", (), exc) from exc


async def _driver_in_transaction(conn: AsyncConnection) -> Any:
    """The asyncpg connection behind `conn`, with its transaction open on the server.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, before its first statement, so it is opened
    here if no statement ran yet (a private method; tests/db/test_direct.py fails if that contract
    changes).
    """
    raw = await conn.get_raw_connection()
    if conn.in_transaction():
        adapted: Any = raw.dbapi_connection
        if adapted._transaction is None:
            await adapted._start_transaction()
    return raw.driver_connection


def _tenant_of(params: Mapping[str, Any]) -> Any:
    """Batches keep to one tenant (storage/coalesce.py): on a PostgreSQL distributed by tenant a
    batch is then a transaction on one node."""
    return params.get("tenant_id")


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
    (`KeptConnections._borrowed`). (asyncpg's `_cancel_current_command` is private: tests/faults
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
