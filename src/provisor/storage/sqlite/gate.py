"""One queue for SQLite writers across worker processes.

SQLite admits one writer at a time. A writer that finds the database locked sleeps in SQLite's busy
handler and polls with growing back-off (up to 100 ms a step), so under a burst of writes from two
workers the unlucky ones waited up to 1.5 s (docs/performance.md). Here writers queue instead: in
each process on an `asyncio.Lock`, and between processes on an exclusive `flock` of a file beside
the database, which the kernel hands over as soon as it is released. `BEGIN IMMEDIATE` then rarely
waits at all; the busy timeout still covers writers outside Provisor (the CLI, other tools).

The one-call writes (storage/sqlite/driver.py `write_in_sqlite_thread`) take the `flock` in the
connection's thread, through a descriptor of their own (`thread_descriptor`): so the gate is held
for their transaction alone, not for the hops between that thread and the loop. Writes that
passed the gate ask for a WAL checkpoint, which runs off the lock; once the WAL is past its mark,
the short pass that finishes it runs in such a writer's thread after its COMMIT, before the gate
is let go (storage/sqlite/checkpoint.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import weakref
from types import TracebackType

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.sqlite.checkpoint import WalCheckpointer
from provisor.storage.urls import sqlite_path


class SqliteWriterGate:
    def __init__(self, database_path: str) -> None:
        self.lock_path = database_path + ".write-lock"
        #: Checkpoints the WAL after writes passed the gate, off the write lock (past the WAL's mark,
        #: a short second pass under the gate, by the next writer).
        self.checkpoints = WalCheckpointer(database_path, self._open)
        self._local = asyncio.Lock()
        self._fd: int | None = None
        self._thread_fd: int | None = None

    def _open(self) -> int:
        """A new descriptor of the lock file (a new open file description: a lock of its own)."""
        return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    def _file(self) -> int:
        if self._fd is None:
            self._fd = self._open()
        return self._fd

    async def __aenter__(self) -> None:
        await self._local.acquire()
        try:
            fd = self._file()
            try:  # free most of the time: take it without a hop to the executor's thread
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            taking = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        except BaseException:
            self._local.release()
            raise
        try:
            await asyncio.shield(taking)
        except asyncio.CancelledError:
            # The thread still takes the lock, through this process's one descriptor: the next
            # writer of this process would "take" it too (a lock belongs to the open file
            # description) and then lose it when the thread's lock is given back. So this process's
            # queue stays held until the thread has the lock and has given it back.
            taking.add_done_callback(self._give_back)
            raise
        except BaseException:
            self._local.release()
            raise

    def _give_back(self, taking: asyncio.Future[None]) -> None:
        """After a cancelled writer's thread is done waiting: let the lock and the queue go."""
        try:
            if not taking.cancelled() and taking.exception() is None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._local.release()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._local.release()
        self.checkpoints.kick()

    def thread_descriptor(self) -> int:
        """A descriptor of the lock file of its own, for writes that wait for the gate in a
        connection's thread (storage/sqlite/driver.py `_run_batch`) instead of in this process's
        queue. `flock` locks belong to open file descriptions, so it excludes this process's other
        writers exactly as it does another process's."""
        if self._thread_fd is None:
            self._thread_fd = self._open()
        return self._thread_fd

    def close(self) -> None:
        for fd in (self._fd, self._thread_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._thread_fd = None


_gates: weakref.WeakKeyDictionary[Engine, SqliteWriterGate | None] = weakref.WeakKeyDictionary()


def writer_gate(engine: AsyncEngine) -> SqliteWriterGate | None:
    """The engine's gate; None for in-memory databases (one connection, nothing to queue for)."""
    sync = engine.sync_engine
    if sync not in _gates:
        database = sqlite_path(engine.url.render_as_string(hide_password=False)) or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        gate = None if in_memory else SqliteWriterGate(os.path.abspath(database))
        if gate is not None:
            # The checkpoints' connection closes with the engine's, whoever wrote through it.
            event.listen(sync, "engine_disposed", lambda _engine: gate.checkpoints.stop())
        _gates[sync] = gate
    return _gates[sync]
