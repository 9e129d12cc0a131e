"""Concurrent calls of one statement, sent to PostgreSQL as one round trip.

Under load a worker has several requests in flight, and most of them run the same few statements
(read a user, write a user). Each statement sent alone costs a round trip, its own protocol and
executor set-up in the backend and, for writes, its own commit with its own WAL flush. So while a
statement is in flight, the calls of the same statement that arrive meanwhile wait, and then go
together: one `fetchmany` on one connection, that is one Bind/Execute per call and one Sync. The
backend runs them one after the other in one implicit transaction, so a batch of writes is one
commit (group commit, done by the client). A call that finds none in flight waits only for the end
of the event loop's current pass, so that the calls made in the same pass go with it.

A batch is atomic: when one of its calls fails in the database, none of them took effect, and
each is run again alone so that it gets its own answer (the failing call its error, the others
their rows). A failure that may have left the batch committed (the connection broke) is passed to
every call instead, as it would have been to a lone call. A caller that gives up while waiting
(cancelled) is dropped from the batch before it is sent. Statements that may fail in the database
in the normal course of things should not be batched: a rolled-back write that took event
sequence numbers leaves gaps that change-feed readers wait out (storage/event_log.py), so the
write statements batched here are written to report conflicts as "no row" instead of failing.

Each batched statement selects (or returns) the `call` parameter as its last column; the rows of a
batch are dealt back to their calls by it.

SQLite's write transactions are batched the same way by a queue of their own
(storage/sqlite/driver.py `write_in_sqlite_thread`): SQLite takes one writer at a time anyway, so
the writes that queue for the lock meanwhile go in one transaction, each in a savepoint of its own
that fails alone (`Failed`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from asyncpg.exceptions import PostgresError
from sqlalchemy.exc import IntegrityError

Row = Sequence[Any]
Params = Mapping[str, Any]
P = TypeVar("P")
R = TypeVar("R")

#: The most calls sent in one batch. Batches are bounded by the requests in flight anyway; this
#: only keeps one batch's locks and WAL record from growing without limit.
MAX_BATCH = 64

#: Errors the database reported for a statement: the batch's transaction rolled back, so running
#: its calls again one by one is safe.
_ROLLED_BACK: tuple[type[BaseException], ...] = (IntegrityError, PostgresError)


@dataclass(frozen=True)
class Failed:
    """A call of a batch that failed on its own (the others took effect): `run_many` returns it in
    that call's place, and the call raises `error`."""

    error: BaseException


class Batcher(Generic[P, R]):
    """Coalesces concurrent calls of one statement (see the module docstring).

    `run_one(params)` runs one call; `run_many(params_list)` runs several as one batch and returns
    each call's rows, in order. At most `in_flight` batches (a lone call counts as one) run at once.
    `lock_order` (for writes) sorts each batch, so that batches running at the same time in other
    workers take their row locks in the same order: two batches that lock the same two rows in
    opposite orders would deadlock, and PostgreSQL resolves that only after `deadlock_timeout`.
    `same_batch` keys which calls may go together (the tenant): a batch then touches one tenant's
    rows only, so on a PostgreSQL distributed by tenant it stays a single-node transaction.
    """

    def __init__(
        self,
        run_one: Callable[[P], Awaitable[R]],
        run_many: Callable[[list[P]], Awaitable[list[R | Failed]]],
        *,
        in_flight: int = 1,
        max_batch: int = MAX_BATCH,
        lock_order: Callable[[P], Any] | None = None,
        same_batch: Callable[[P], Any] | None = None,
    ) -> None:
        self._run_one = run_one
        self._run_many = run_many
        self._limit = in_flight
        self._max_batch = max_batch
        self._lock_order = lock_order
        self._same_batch = same_batch
        self._running = 0
        self._waiting: deque[tuple[P, asyncio.Future[R]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Calls and batches sent, for tests and the bench (a batch of one is a lone call).
        self.calls = 0
        self.batches = 0

    async def fetch(self, params: P) -> R:
        if self._running < self._limit and not self._waiting:
            self._running += 1
            try:
                # Wait for the end of this pass of the event loop: the calls of this statement that
                # the tasks resumed in the same pass make (the other requests whose previous
                # statement came back in the same batch, or whose requests arrived together) go
                # with this one instead of after it.
                await asyncio.sleep(0)
            except BaseException:
                self._release()
                raise
            if self._waiting:
                return await self._lead(params)
            self.calls += 1
            self.batches += 1
            try:
                return await self._run_one(params)
            finally:
                self._release()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((params, future))
        return await future

    async def _lead(self, params: P) -> R:
        """Send this call first in a batch with the calls that came in meanwhile. The batch goes
        from a task of its own, as every batch does: this caller may be cancelled while the
        others' calls are in the database, and they must still get their answers."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.appendleft((params, future))
        self._release()
        return await future

    def _release(self) -> None:
        """Give back a slot of `limit` (a call or batch is done, or handed on) and start what waits."""
        self._running -= 1
        self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and self._running < self._limit:
            batch = self._take()
            if not batch:
                return
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[P, asyncio.Future[R]]]:
        """The next batch: the oldest live call and the live calls after it that may go with it,
        in arrival order; calls of another `same_batch` key keep their places for a later batch."""
        batch: list[tuple[P, asyncio.Future[R]]] = []
        later: list[tuple[P, asyncio.Future[R]]] = []
        key: Any = None
        while self._waiting and len(batch) < self._max_batch:
            params, future = self._waiting.popleft()
            if future.done():  # a caller that was cancelled while waiting is not run
                continue
            if self._same_batch is not None:
                if not batch:
                    key = self._same_batch(params)
                elif self._same_batch(params) != key:
                    later.append((params, future))
                    continue
            batch.append((params, future))
        self._waiting.extendleft(reversed(later))
        if self._lock_order is not None:
            order = self._lock_order
            batch.sort(key=lambda item: order(item[0]))
        return batch

    async def _send(self, batch: list[tuple[P, asyncio.Future[R]]]) -> None:
        self.calls += len(batch)
        self.batches += 1
        try:
            if len(batch) == 1:
                await _settle(batch[0][1], self._run_one(batch[0][0]))
                return
            try:
                results = await self._run_many([params for params, _ in batch])
            except _ROLLED_BACK:
                for params, future in batch:  # nothing took effect: each call alone, for its own answer
                    await _settle(future, self._run_one(params))
            except BaseException as exc:
                for _, future in batch:
                    _fail(future, exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    if isinstance(result, Failed):
                        _fail(future, result.error)
                    elif not future.done():
                        future.set_result(result)
        finally:
            for _, future in batch:  # only when this task itself was cancelled mid-batch
                future.cancel()
            self._release()

    def close(self, error: BaseException) -> None:
        """Fail every waiting call (the engine is being disposed)."""
        while self._waiting:
            _fail(self._waiting.popleft()[1], error)


async def _settle(future: asyncio.Future[R], call: Awaitable[R]) -> None:
    try:
        rows = await call
    except BaseException as exc:
        _fail(future, exc)
        if not isinstance(exc, Exception):
            raise
    else:
        if not future.done():
            future.set_result(rows)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(exc)
