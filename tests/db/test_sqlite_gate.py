"""SQLite writers queue on one gate across engines (and so across worker processes).

SQLite-only by nature: PostgreSQL has row locks and needs no gate. Two engines on one file stand in
for two workers: `flock` locks belong to open file descriptions, so they exclude each other exactly
as two processes do.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.budget import Budget, TimedOut, current_budget
from provisor.storage.direct import write_in_sqlite_thread
from provisor.storage.engine import create_engine
from provisor.storage.migrate import upgrade
from provisor.storage.sqlite.driver import reader
from provisor.storage.sqlite.gate import writer_gate
from provisor.storage.transactions import write_transaction


@contextlib.asynccontextmanager
async def gate_held(engine: AsyncEngine, statement: str) -> AsyncIterator[asyncio.Task[None]]:
    """Another worker's write transaction (`statement`), holding the writers' gate until the block
    ends; the block gets its task."""
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with write_transaction(engine) as conn:
            await conn.execute(text(statement))
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    try:
        yield holder
    finally:
        release.set()
        await holder


def test_writers_of_two_engines_queue_instead_of_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gate.db'}"

    async def main() -> None:
        first, second = create_engine(url), create_engine(url)
        try:
            await upgrade(first)
            for engine in (first, second):
                async with write_transaction(engine) as conn:
                    await conn.execute(text("CREATE TABLE IF NOT EXISTS hits (n INTEGER)"))

            async def hold(seconds: float) -> None:
                async with write_transaction(first) as conn:
                    await conn.execute(text("INSERT INTO hits VALUES (0)"))
                    await asyncio.sleep(seconds)

            holder = asyncio.create_task(hold(0.3))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            async with write_transaction(second) as conn:  # waits on the gate, not in busy_timeout
                await conn.execute(text("INSERT INTO hits VALUES (1)"))
            assert time.monotonic() - started >= 0.2
            await holder

            async def write(engine_index: int, n: int) -> None:
                async with write_transaction((first, second)[engine_index]) as conn:
                    await conn.execute(text("INSERT INTO hits VALUES (:n)"), {"n": n})

            await asyncio.gather(*(write(n % 2, n) for n in range(2, 102)))
            async with first.connect() as conn:
                assert (await conn.execute(text("SELECT count(*) FROM hits"))).scalar_one() == 102
        finally:
            await first.dispose()
            await second.dispose()

    asyncio.run(main())


def test_a_writer_cancelled_while_queued_leaves_the_gate_usable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cancel.db'}"

    async def main() -> None:
        first, second = create_engine(url), create_engine(url)
        try:
            gate_a, gate_b = writer_gate(first), writer_gate(second)
            assert gate_a is not None and gate_b is not None and gate_a is not gate_b
            async with gate_a:
                waiting = asyncio.create_task(gate_b.__aenter__())
                await asyncio.sleep(0.05)
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
            await asyncio.sleep(0.05)  # the cancelled waiter's thread takes the lock, then gives it back
            for gate in (gate_a, gate_b):
                await asyncio.wait_for(gate.__aenter__(), 2)
                await gate.__aexit__(None, None, None)
        finally:
            await first.dispose()
            await second.dispose()

    asyncio.run(main())


def test_in_memory_databases_have_no_gate() -> None:
    assert writer_gate(create_engine("sqlite:///:memory:")) is None


def test_a_write_whose_deadline_passes_while_it_waits_for_the_gate_is_answered_and_never_commits(
    tmp_path: Path,
) -> None:
    """The one-call writes wait for the gate in the connection's thread; their deadline takes them
    out of the transaction until it starts, and the caller is answered at once (not when the gate
    comes free), with nothing written then or later."""
    url = f"sqlite:///{tmp_path / 'deadline.db'}"

    async def main() -> None:
        first, second = create_engine(url), create_engine(url)
        try:
            await upgrade(first)
            async with write_transaction(first) as conn:
                await conn.execute(text("CREATE TABLE hits (n INTEGER)"))

            def insert(n: int) -> Callable[[sqlite3.Connection], None]:
                return lambda db: db.execute("INSERT INTO hits VALUES (?)", (n,)) and None

            async def late_write() -> None:
                budget = Budget(0.3, asyncio.current_task().cancel)  # type: ignore[union-attr]
                current_budget.set(budget)
                asyncio.get_running_loop().call_later(0.3, budget.expire)
                await write_in_sqlite_thread(second, insert(1))

            async with gate_held(first, "INSERT INTO hits VALUES (0)") as holder:
                with pytest.raises(TimedOut):
                    await asyncio.create_task(late_write())  # a task: its budget stays in its context
                assert not holder.done()  # answered while the gate was still held
            await write_in_sqlite_thread(second, insert(2))  # runs after the abandoned batch
            async with first.connect() as conn:
                rows = (await conn.execute(text("SELECT n FROM hits ORDER BY n"))).scalars().all()
            assert rows == [0, 2]
        finally:
            await first.dispose()
            await second.dispose()

    asyncio.run(main())


def test_a_writer_cancelled_while_its_thread_waits_for_the_lock_does_not_release_the_next_ones(
    tmp_path: Path,
) -> None:
    """The cancelled writer's thread takes the lock late, through the same descriptor as the next
    writer of its process; giving it back then must not take it from under that next writer."""
    gate = writer_gate(create_engine(f"sqlite:///{tmp_path / 'race.db'}"))
    assert gate is not None
    other = os.open(gate.lock_path, os.O_RDWR | os.O_CREAT, 0o600)  # another process's writer

    def free_to_others() -> bool:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(other, fcntl.LOCK_UN)
        return True

    async def main() -> None:
        fcntl.flock(other, fcntl.LOCK_EX)
        first = asyncio.create_task(gate.__aenter__())
        await asyncio.sleep(0.05)  # its thread now waits in flock
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        inside = asyncio.Event()
        leave = asyncio.Event()

        async def second() -> None:
            async with gate:
                inside.set()
                await leave.wait()

        fcntl.flock(other, fcntl.LOCK_UN)  # the other process is done: the thread takes the lock
        task = asyncio.create_task(second())  # this process's next writer, first in the loop's queue
        time.sleep(0.1)  # noqa: ASYNC251 - the loop busy meanwhile, as under load
        await asyncio.wait_for(inside.wait(), 5)
        await asyncio.sleep(0.1)
        assert not free_to_others(), "another process could write while this one holds the gate"
        leave.set()
        await task
        assert free_to_others()

    try:
        asyncio.run(main())
    finally:
        os.close(other)
        gate.close()


def open_temp_files() -> list[str]:
    """The files SQLite made for temporary data that this process has open (it deletes them as it
    opens them: they show as "(deleted)")."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return [name for name in names if "etilqs_" in name]


def test_writes_sharing_a_transaction_keep_their_savepoints_in_memory(tmp_path: Path) -> None:
    """Writes that queue behind a transaction share the next one, each in a savepoint. What a
    savepoint must restore goes to a temporary file once it passes SQLite's 64 KiB, one created and
    deleted per transaction, which under a burst of creates was half of the writes' system calls
    (docs/performance.md); with temp_store=MEMORY for such transactions (storage/sqlite/driver.py
    `_savepoints`) it stays in memory."""
    url = f"sqlite:///{tmp_path / 'savepoints.db'}"

    async def main() -> None:
        first, second = create_engine(url), create_engine(url)
        try:
            await upgrade(first)
            async with write_transaction(first) as conn:
                await conn.execute(text("CREATE TABLE hits (n INTEGER, pad BLOB)"))
                for n in range(200):  # about 100 pages: each write below changes all of them
                    await conn.execute(text("INSERT INTO hits VALUES (:n, randomblob(2000))"), {"n": n})
            seen: list[list[str]] = []

            def rewrite(db: sqlite3.Connection) -> None:
                db.execute("UPDATE hits SET pad = randomblob(2000)")
                seen.append(open_temp_files())

            async with gate_held(first, "UPDATE hits SET n = n"):
                # The first waits for the gate alone; the two others queue behind it.
                alone = asyncio.create_task(
                    write_in_sqlite_thread(second, lambda db: db.execute("UPDATE hits SET n = 1 WHERE n = 0"))
                )
                writes = [
                    alone,
                    *(asyncio.create_task(write_in_sqlite_thread(second, rewrite)) for _ in range(2)),
                ]
                await asyncio.sleep(0.2)
            await asyncio.gather(*writes)
            calls, transactions = reader(second).sqlite_write_counts()
            assert (calls, transactions) == (3, 2)  # the last two shared a transaction
            assert seen == [[], []]
        finally:
            await first.dispose()
            await second.dispose()

    asyncio.run(main())
