"""How SQLite's workers hear of changes to tokens and tenants (contracts.py `TokenSignal`).

SQLite has no LISTEN/NOTIFY. Beside the database, `<database>.auth-signal` holds 8 bytes, and
every Provisor writer that changes tokens or tenants (`storage.auth_cache.auth_write`: the admin
API, the console, the CLI, rotation, setup links; and `provisor restore`) writes 8 new random bytes
there once its commit has returned (`announce`). A worker reads them (one `pread`, about 0.2 µs)
before it answers from its token cache and before it keeps a lookup; any difference empties the
cache (storage/auth_cache.py `AuthCache`). A write completes before the writer returns, and every
process of the host reads the same page cache: a request that reaches any worker after the writer
returned finds the new bytes.

What the signal cannot see is bounded by the cache's lifetime (`SIGNAL_TTL_SECONDS` there): a change
made with other tools (the `sqlite3` shell), a writer that dies between its commit and its
announcement, a signal file deleted or replaced while workers run (a worker reopens it by name when
its cache lapses, and answers nothing from memory meanwhile if it cannot), one that cannot be read
(then the cache is never used). Random bytes rather than a counter: no read-modify-write between
processes, and a torn read can only look like a change.

The file is one host's: SQLite serves one host (network file systems are not supported), and so
does this signal. A worker that can neither create nor open it (a read-only directory and no
file) runs with the cache off.
"""

from __future__ import annotations

import logging
import os
from stat import S_ISREG

from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.urls import sqlite_path

log = logging.getLogger("provisor.auth")

SUFFIX = ".auth-signal"
SIZE = 8


def signal_path(engine: AsyncEngine) -> str | None:
    """The signal file of the engine's database; None for an in-memory one (private to one
    connection: there is no other process to tell)."""
    database = sqlite_path(engine.url.render_as_string(hide_password=False))
    return None if database is None else path_for(database)


def path_for(database: str) -> str:
    """The signal file beside `database`, named after the file itself (symbolic links resolved),
    so that every process finds the same one, whichever name it was given."""
    return os.path.realpath(database) + SUFFIX


class SignalWatch:
    """One worker's view of the signal file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._seen = b""

    def open(self) -> bool:
        """Open (or create) the file; False when neither is possible."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            try:  # a read-only directory: another process (with write access) may announce
                fd = os.open(self.path, os.O_RDONLY)
            except OSError as exc:
                log.info("token cache off: cannot open %s (%s)", self.path, exc)
                return False
        else:
            try:
                if os.fstat(fd).st_size < SIZE:
                    os.pwrite(fd, os.urandom(SIZE), 0)
            except OSError:
                pass
        stat = os.fstat(fd)
        if not S_ISREG(stat.st_mode):
            os.close(fd)
            log.info("token cache off: %s is not a file", self.path)
            return False
        self.close()
        self._fd = fd
        self._identity = (stat.st_dev, stat.st_ino)
        self._seen = b""
        return True

    def changed(self) -> bool:
        """Whether the file holds other bytes than at the last call (always, when it cannot be read
        or is short: the cache is then of no use, never stale)."""
        if self._fd is None:
            return True
        try:
            now = os.pread(self._fd, SIZE, 0)
        except OSError:
            return True
        if len(now) == SIZE and now == self._seen:
            return False
        self._seen = now
        return True

    def recheck(self) -> None:
        """Reopen the file if the name now points elsewhere (deleted, replaced, restored over):
        announcements go to the name, not to what this worker opened."""
        try:
            stat = os.stat(self.path)
            if (stat.st_dev, stat.st_ino) == self._identity:
                return
        except OSError:
            pass
        if not self.open():
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._identity = None


def watch(engine: AsyncEngine) -> SignalWatch | None:
    """The signal of the engine's database, open; None when there is none to watch."""
    path = signal_path(engine)
    if path is None:
        return None
    signal = SignalWatch(path)
    return signal if signal.open() else None


def announce_path(path: str) -> bool:
    """Write new bytes into the signal file at `path`; False when it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        return os.pwrite(fd, os.urandom(SIZE), 0) == SIZE
    except OSError:
        return False
    finally:
        os.close(fd)


def announce(engine: AsyncEngine) -> bool:
    """Tell every worker that tokens or tenants changed (after the change's commit); True when
    there is nobody to tell (an in-memory database)."""
    path = signal_path(engine)
    if path is None:
        return True
    if announce_path(path):
        return True
    log.warning("cannot write %s: workers drop their token caches within their lifetime instead", path)
    return False
