"""Database failures as the client should see them.

A database that is down, restarting, out of connections, out of disk or holding a lock longer than
the request may wait is not a bug of the request: the client gets a SCIM 503 with `Retry-After`
(507 when the disk is full) instead of a generic 500, and nothing was written (a failed statement
or commit rolls back; see provisor/budget.py for commits the deadline interrupts).
"""

from __future__ import annotations

import logging
import sqlite3
import time

from asyncpg import exceptions as pg
from sqlalchemy.exc import DBAPIError as DBAPIError  # what the CLI inspects (cli/errors.py)

from provisor.budget import Unavailable
from provisor.errors import ScimError


class InsufficientStorage(ScimError):
    """507 (RFC 4918 11.5): the server cannot store what the request asked it to store."""

    def __init__(self) -> None:
        super().__init__(507, "the database's disk is full; nothing was written; retry once space is freed")
        self.headers = {"Retry-After": "30"}


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
    pg.InternalClientError,  # a connection the server closed mid-protocol (storage/direct.py `_never_sent`)
    pg.PostgresConnectionError,
    ConnectionError,
    TimeoutError,
)
_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_SQLITE_UNAVAILABLE = {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL}


def database_fault(exc: BaseException) -> ScimError | None:
    """The SCIM error for `exc` when it (or what it wraps) is a database failure, else None."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        seen += 1
        if isinstance(current, ScimError):
            return current if current.status >= 500 else None
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", 0) & 0xFF
            if code == sqlite3.SQLITE_FULL:
                return InsufficientStorage()
            if code in _SQLITE_BUSY:
                return Unavailable("the database is locked by another writer; nothing was written")
            if code in _SQLITE_UNAVAILABLE:
                return Unavailable("the database could not be read or written; nothing was written")
            return None
        if isinstance(current, pg.DiskFullError):
            return InsufficientStorage()
        if isinstance(current, _PG_UNAVAILABLE) or (isinstance(current, OSError) and current.errno):
            return Unavailable("the database is unavailable; nothing was written")
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


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
        if database_fault(exc) is None:
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
