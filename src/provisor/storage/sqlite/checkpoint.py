"""WAL checkpoints off the writers' lock.

In WAL mode a commit appends pages to the `-wal` file. A checkpoint copies them back into the
database file and syncs both (synchronous=NORMAL: the WAL before copying, the database after);
once all of the WAL is copied, the next writer starts it over from its beginning. SQLite runs one
by itself in the COMMIT that takes the WAL past `wal_autocheckpoint` pages: inside that writer's
transaction, so while it holds the write lock (and the writers' gate, storage/sqlite/gate.py), and
the writers of every worker wait for its copy and its two `fdatasync`s. Under a burst of creates
with SQLite's default (1,000 pages) those checkpoints were 4% of the write transactions and 43%
of their time (docs/performance.md, "Applied in the ninth round").

So each process checkpoints in the background: after writes pass its gate, a PASSIVE checkpoint
runs in a thread, on a connection of its own, at most every `INTERVAL` seconds. PASSIVE takes no
write lock: writers go on appending while it copies. What it cannot do under a steady stream of
writes is finish with nothing left to copy, which is what lets the WAL start over. So once the
WAL is past `WAL_MARK_PAGES` (storage/sqlite/engine.py), a checkpoint that has copied what it
could syncs the WAL, still off the lock, and hands the rest to the next writer of its process:
that writer, right after its COMMIT and still holding the gate, checkpoints once more
(`finish_after_commit`). That pass copies only what was committed since the first one, so it
finishes in a few milliseconds, and the next writer starts the WAL over.
The WAL file so stays at about the mark (a reader holding an older snapshot can delay the restart
to the next checkpoint).

The checkpoint thread used to take the gate for that pass itself. `flock` hands a released lock
to whoever asks first, and two workers' writers ask again at once, so under load that thread
waited 1.3-2.3 s for the gate while the WAL grew to 30,000-90,000 pages; its pass then copied and
synced all that under the gate, which it held up to 1.5 s while every writer waited
(docs/performance.md). A writer has the gate already. Only when no writer of the process took the
pass by the next checkpoint (its writes go through another path, storage/sqlite/transactions.py)
does the thread still take the gate for it.

That used to be SQLite's own checkpoint, in the commit that took the WAL past the mark: it copied
everything written since the background's last pass, while every writer waited, 17-33 ms in under
1% of the transactions but 15-23% of the gate's time, even with the background passes every
`NEAR_INTERVAL` (then 5 ms) once the WAL is past half the mark (docs/performance.md). SQLite's own
(`WAL_AUTOCHECKPOINT_PAGES`) now sits at four times the mark: it bounds the WAL of a process
whose background checkpoints do not run. A background checkpoint is two `fdatasync`s and the
pages changed since the last one (a page written all the time is copied each time), so it is not
run continuously: every `INTERVAL`, and every `NEAR_INTERVAL` past half the mark. A checkpoint
that got no further than the one before (a reader holds an older snapshot: nothing more can be
copied) does not hurry.

SQLite syncs the database file only in a pass that reaches the WAL's end, so the pass under the
gate also waited for every page the background passes had copied since the WAL last started over,
while the writers of every worker waited for the gate: 139 ms on 1.1M users with a pass every 2 s,
and with the settings below about half of SQLite's write p99 under PATCHes. So before the thread
hands that pass over (or runs it itself), it syncs the database file, off the gate
(`_sync_database`); the pass under the gate then syncs only the pages it copied. It does so
through a descriptor that one of this process's SQLite connections already holds, found in
/proc/self/fd, never one opened here, for the reason `_sync_wal` gives. Without /proc the pass
syncs everything, as before.

Durability is SQLite's WAL with synchronous=NORMAL as before: a checkpoint syncs the WAL first,
so a commit is on disk at the latest by the next checkpoint, which comes within about `INTERVAL`
seconds while writes go on.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable

from provisor.storage.sqlite.engine import WAL_MARK_PAGES

log = logging.getLogger("provisor.storage")

#: The shortest time between two background checkpoints of one process (the module docstring).
#: Each pass copies every page written since the one before, once, however often it was written:
#: at 0.05 s the hot pages (the events' last pages, the B-trees' inner pages) were copied and
#: synced up to four times as often, and PATCH ran 10-18% slower (docs/performance.md, the
#: fifteenth round).
INTERVAL = 0.2

#: The time between them once the WAL holds more than half of `WAL_MARK_PAGES`: the pass that
#: finishes it under the gate then finds only what was written since, tens of milliseconds.
NEAR_INTERVAL = 0.02


def checkpoint_connection(path: str) -> sqlite3.Connection:
    """A connection of the checkpoints' own to the database at `path` (never creating it)."""
    uri = "file:" + urllib.parse.quote(path) + "?mode=rw"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def passive_checkpoint(db: sqlite3.Connection) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: (busy, pages in the WAL, pages of it copied into the database). busy
    is 1 when another connection was checkpointing (PASSIVE does not wait for it)."""
    busy, wal_pages, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(wal_pages), int(copied)


def open_descriptor(path: str) -> int | None:
    """A descriptor of the file at `path` that this process already has open (a SQLite
    connection's), from /proc/self/fd; None when there is none or no /proc. If its connection
    closes it meanwhile, an fdatasync on the number fails or syncs another file: both harmless."""
    target = os.path.realpath(path)
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                return int(name)
        except OSError:  # closed since the listing
            continue
    return None


class WalCheckpointer:
    """Background PASSIVE checkpoints of one database file, asked for by `kick` (see the module
    docstring). Runs on the event loop that kicks it; one checkpoint at a time."""

    def __init__(
        self, path: str, open_gate: Callable[[], int] | None = None, interval: float = INTERVAL
    ) -> None:
        """`open_gate`: a new descriptor of the writers' gate (storage/sqlite/gate.py), a lock of
        its own; without it the WAL is started over by SQLite's own checkpoint only."""
        self.path = path
        self._open_gate = open_gate
        self._lock_fd: int | None = None
        self.interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        #: A checkpoint is scheduled or running (on `_loop`).
        self._scheduled = False
        #: Writes passed the gate since the last checkpoint started.
        self._dirty = False
        self._next = 0.0
        self._failed = False
        #: The checkpoints' connection, kept from one to the next: a new one each time opened the
        #: files, mapped the WAL index and parsed the whole schema, every 5 ms near the mark.
        self._db: sqlite3.Connection | None = None
        self._stopped = False
        #: Held by the thread running a checkpoint: one at a time on the connection, even when a
        #: loop that shut down left one running.
        self._running = threading.Lock()
        #: Guards `_stopped` and closing the connection, between the loop and that thread.
        self._mutex = threading.RLock()
        #: Checkpoints run, the last one's (busy, pages in the WAL, pages of it copied) and the
        #: shortest time to the next, for tests.
        self.runs = 0
        #: Second passes run under the writers' gate (past the mark), by a writer or by this thread.
        self.finishing_passes = 0
        #: Syncs of the database file by this thread before a finishing pass (`_sync_database`).
        self.database_syncs = 0
        #: Past the mark, the first pass done and the WAL synced: the next writer of this process
        #: runs the second pass (`finish_after_commit`).
        self.finish_wanted = False
        self.last: tuple[int, int, int] | None = None
        self.delay = interval

    def kick(self) -> None:
        """Writes were committed (or tried): checkpoint within `interval` seconds."""
        self._dirty = True
        loop = asyncio.get_running_loop()
        if self._scheduled and self._loop is loop:
            return
        self._loop, self._scheduled = loop, True
        delay = self._next - loop.time()
        if delay > 0:
            self._handle = loop.call_later(delay, self._start)
        else:
            self._start()

    def stop(self) -> None:
        """Drop a checkpoint that has not started (the engine is disposed) and close the
        connection; a checkpoint running in its thread finishes first, and that thread closes it
        (also when the loop that started it has ended meanwhile)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._task is None:
            self._scheduled = False
        with self._mutex:
            self._stopped = True
        if self._running.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._running.release()

    def _close(self) -> None:
        with self._mutex:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _checkpoint(self) -> tuple[int, int, int]:
        """In a thread: `_passes`, then close the connection if the checkpoints were stopped
        meanwhile (after letting `_running` go: `stop` closes it when it finds that free)."""
        try:
            with self._running:
                return self._passes()
        finally:
            with self._mutex:
                if self._stopped:
                    self._close()

    def _passes(self) -> tuple[int, int, int]:
        """A PASSIVE pass; past the mark, the second one that finishes the WAL (so that the next
        writer starts it over) is handed to the next writer, or run here under the writers' gate
        if no writer took it since the last checkpoint."""
        if self._db is None:
            self._db = checkpoint_connection(self.path)
        unclaimed = self.finish_wanted
        first = passive_checkpoint(self._db)
        busy, wal_pages, _ = first
        if self._open_gate is None or busy or wal_pages < WAL_MARK_PAGES:
            if wal_pages < WAL_MARK_PAGES:  # started over meanwhile: nothing left to finish
                self.finish_wanted = False
            return first
        self._sync_database()
        if not unclaimed:
            self._sync_wal()
            self.finish_wanted = True
            return first
        if self._lock_fd is None:
            self._lock_fd = self._open_gate()
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            if not self.finish_wanted:  # a writer ran it while this thread waited for the gate
                return first
            self.finish_wanted = False
            self.finishing_passes += 1
            return passive_checkpoint(self._db)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _sync_wal(self) -> None:
        """Sync the WAL now, off the gate, so that the pass under it syncs only the frames written
        after. The WAL alone: POSIX locks belong to a process and a file, so closing a descriptor
        of the database file opened here would drop every lock this process's connections hold
        on it, and another process's closing connection, finding itself alone, would checkpoint
        and delete the WAL under them (a corrupt database; SQLite takes no lock on the WAL file)."""
        try:
            fd = os.open(self.path + "-wal", os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def _sync_database(self) -> bool:
        """Sync the database file now, off the gate: SQLite syncs it only in the pass that
        reaches the WAL's end, and that pass then waited for every page the passes before it
        had copied since the last sync, holding the gate (docs/performance.md, the eighteenth
        round). Through a descriptor one of this process's connections holds
        (`open_descriptor`; `_sync_wal` says why never one opened here). Whether it synced: not
        without such a descriptor or /proc (the pass then syncs it all)."""
        found = open_descriptor(self.path)
        if found is None:
            return False
        try:
            os.fdatasync(found)
        except OSError:  # closed meanwhile, or now another file's: nothing to sync here
            return False
        self.database_syncs += 1
        return True

    def finish_after_commit(self, db: sqlite3.Connection) -> None:
        """Run by a writer on its connection right after its COMMIT, while it still holds the
        writers' gate: the second pass, if the checkpoints asked for it (`finish_wanted`). Its
        writes are committed whatever happens here, so this never raises: a failed or busy pass is
        left to the next writer or to the checkpoint thread."""
        if not self.finish_wanted:
            return
        self.finish_wanted = False
        try:
            busy, _, _ = passive_checkpoint(db)
        except Exception as exc:
            self.finish_wanted = True
            if not self._failed:
                self._failed = True
                log.warning("WAL checkpoint after a commit failed (logged once): %s", exc)
            return
        if busy:  # another connection was checkpointing: the next writer tries again
            self.finish_wanted = True
        else:
            self.finishing_passes += 1

    def resume(self) -> None:
        """The engine is in use again after `stop` (a new reader of it): keep the connection from
        one checkpoint to the next again. While stopped, a checkpoint still runs when kicked, and
        closes its connection after."""
        with self._mutex:
            self._stopped = False

    def _start(self) -> None:
        self._handle = None
        self._dirty = False
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(loop))

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        before = self.last
        try:
            self.last = await asyncio.to_thread(self._checkpoint)
            self.runs += 1
        except asyncio.CancelledError:  # the loop is shutting down
            self._task, self._scheduled = None, False
            raise
        except Exception as exc:  # SQLite's own checkpoint still bounds the WAL
            self._close()  # the next one starts on a new connection
            if not self._failed:
                self._failed = True
                log.warning("background WAL checkpoint failed (logged once): %s", exc)
        self._task, self._scheduled = None, False
        if self._stopped:
            return
        self.delay = NEAR_INTERVAL if self._near_the_mark(before) else self.interval
        self._next = loop.time() + self.delay
        if self._dirty:
            self.kick()

    def _near_the_mark(self, before: tuple[int, int, int] | None) -> bool:
        """The WAL holds more than half its mark, and the last checkpoint got further into it than
        the one `before` (SQLite counts the pages copied since the WAL started over)."""
        if self.last is None:
            return False
        _, wal_pages, copied = self.last
        progressed = before is None or copied != before[2] or wal_pages < before[1]
        return progressed and copied >= 0 and wal_pages > WAL_MARK_PAGES // 2
