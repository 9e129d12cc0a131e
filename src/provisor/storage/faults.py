"""Database failures that are not the request's fault, classified once by error code.

A database that is down, restarting, out of connections, out of disk or holding a lock longer than
the request may wait is not a bug of the request: storage names it `DatabaseUnavailable` or
`DiskFull` (storage/errors.py), and provisor/service/errors.py turns that into a SCIM 503 with
`Retry-After` (507 when the disk is full) instead of a generic 500. Nothing was written (a failed
statement or commit rolls back; see provisor/budget.py for commits the deadline interrupts).
"""

from __future__ import annotations

import logging
import sqlite3
import time

from asyncpg import exceptions as pg
from sqlalchemy.exc import DBAPIError as DBAPIError  # what the CLI inspects (cli/errors.py)

from provisor.budget import Unavailable
from provisor.errors import ScimError
from provisor.storage.errors import DatabaseUnavailable, DiskFull, StorageError

#: PostgreSQL errors that mean "not now": cancelled or timed out, the server shutting down or
#: starting, out of connections or resources.
_PG_UNAVAILABLE: tuple[type[BaseException], ...] = (
    pg.QueryCanceledError,
    pg.LockNotAvailableError,
    pg.CannotConnectNowError,
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    pg.TooManyConnectionsError,
    pg.InsufficientResourcesError,
    pg.ConnectionDoesNotExistError,
    pg.InterfaceError,  # "connection is closed" and other dead-connection states
    # a connection the server closed mid-protocol (storage/postgres/driver.py `_never_sent`)
    pg.InternalClientError,
    pg.PostgresConnectionError,
    ConnectionError,
    TimeoutError,
)
_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_SQLITE_UNAVAILABLE = {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL}


def fault_of(exc: BaseException) -> StorageError | None:
    """The storage error `exc` itself stands for (not looking at what it wraps), else None."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code == sqlite3.SQLITE_FULL:
            return DiskFull("the database's disk is full; nothing was written; retry once space is freed")
        if code in _SQLITE_BUSY:
            return DatabaseUnavailable("the database is locked by another writer; nothing was written")
        if code in _SQLITE_UNAVAILABLE:
            return DatabaseUnavailable("the database could not be read or written; nothing was written")
        return None
    if isinstance(exc, pg.DiskFullError):
        return DiskFull("the database's disk is full; nothing was written; retry once space is freed")
    if isinstance(exc, _PG_UNAVAILABLE) or (isinstance(exc, OSError) and exc.errno):
        return DatabaseUnavailable("the database is unavailable; nothing was written")
    return None


def wrapped(exc: BaseException) -> BaseException | None:
    """What `exc` wraps (SQLAlchemy's `orig`, the cause, the context)."""
    return getattr(exc, "orig", None) or exc.__cause__ or exc.__context__


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is the database being away: a fault, or a deadline passed."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, ScimError):  # budget.py's 503s; any other answer is not an outage
            return isinstance(current, Unavailable)
        if isinstance(fault_of(current), DatabaseUnavailable | DiskFull):
            return True
        current = wrapped(current)
    return False


class OutageLog:
    """Logging for a background loop that retries while the database is away: one warning when it
    goes, one line when it is back, nothing per retry in between (a loop polling every few hundred
    milliseconds otherwise writes a traceback each time). Other errors are logged every time."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.down_since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        if not is_outage(exc):
            self.log.exception("%s failed; retrying", self.what)
            return
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.log.warning(
                "%s: the database is unavailable (%s); retrying until it is back", self.what, exc
            )

    def succeeded(self) -> None:
        if self.down_since is not None:
            self.log.warning(
                "%s: the database is back after %.1f s (%d failed attempts)",
                self.what,
                time.monotonic() - self.down_since,
                self.failures,
            )
            self.down_since = None
            self.failures = 0
