"""Storage's own errors: what went wrong in the database, in the database's terms.

Storage never raises a SCIM (HTTP) error: it classifies a driver error once, by SQLSTATE on
PostgreSQL and by extended result code on SQLite (never by matching message text), and raises one
of these. One module, provisor/service/errors.py, maps them to what the client sees.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError

#: PostgreSQL's SQLSTATE for a unique violation, and the one unique index a write path can break
#: (storage/tables.py `ux_attribute_index_unique`: the unique attributes' values).
PG_UNIQUE_VIOLATION = "23505"
UNIQUE_INDEX = "ux_attribute_index_unique"


class StorageError(Exception):
    """Base of the errors storage raises on purpose."""


class UniqueViolation(StorageError):
    """A unique attribute's value is held by another resource of the type (nothing was written).
    `attributes`: the unique attributes the write carried (any of them may be the one taken);
    empty when a batch clashed and which one is not known."""

    def __init__(self, resource_type: str, attributes: Iterable[str] = ()) -> None:
        self.resource_type = resource_type
        self.attributes = tuple(sorted(set(attributes)))
        super().__init__(f"unique value taken ({resource_type}: {', '.join(self.attributes) or '?'})")


class NotFound(StorageError):
    """The resource is not stored (never was, or was deleted)."""

    def __init__(self, resource_type: str, resource_id: str) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        super().__init__(f"{resource_type} {resource_id} not found")


class VersionConflict(StorageError):
    """A write conditional on the stored version found another version (another write got in
    first), and the caller asked for that version explicitly (If-Match): nothing was written."""

    def __init__(self, resource_type: str, resource_id: str, expected: int) -> None:
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.expected = expected
        super().__init__(f"{resource_type} {resource_id} is no longer at version {expected}")


class DatabaseUnavailable(StorageError):
    """The database cannot do this now (down, restarting, locked, out of connections); nothing was
    written. Classified by storage/faults.py."""


class DiskFull(StorageError):
    """The database's disk is full; nothing was written. Classified by storage/faults.py."""


def is_unique_violation(exc: BaseException) -> bool:
    """Whether `exc` (a driver error or SQLAlchemy's IntegrityError around one) broke the unique
    attribute index. PostgreSQL: SQLSTATE 23505 on that index. SQLite: SQLITE_CONSTRAINT_UNIQUE
    (its errors do not name the index; on the write paths that index is the only UNIQUE one the
    statements can break, the primary keys raising SQLITE_CONSTRAINT_PRIMARYKEY)."""
    orig = exc.orig if isinstance(exc, IntegrityError) else exc
    if isinstance(orig, sqlite3.Error):
        return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_UNIQUE
    return getattr(orig, "sqlstate", None) == PG_UNIQUE_VIOLATION and (
        getattr(orig, "constraint_name", None) == UNIQUE_INDEX
    )


@contextmanager
def unique_violations(resource_type: str, attributes: Iterable[str]) -> Iterator[None]:
    """A unique-index violation inside becomes `UniqueViolation(resource_type, attributes)`."""
    try:
        yield
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise UniqueViolation(resource_type, attributes) from None
        raise
