"""The one place storage's errors become SCIM errors.

Storage raises its own exceptions (storage/errors.py: a unique value taken, a resource not found,
a version conflict, the database unavailable or out of disk); `TABLE` says what the client sees
for each. The service's write operations translate at their boundary (`scim_errors`), so callers
of the service (Bulk, import, adoption) see ScimError as before; the HTTP layer's last-resort
handlers use `database_fault` for anything that escaped as a driver error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from provisor.budget import Unavailable
from provisor.errors import ScimError, not_found, precondition_failed, uniqueness
from provisor.storage.errors import (
    DatabaseUnavailable,
    DiskFull,
    NotFound,
    StorageError,
    UniqueViolation,
    VersionConflict,
)
from provisor.storage.faults import fault_of, wrapped


class InsufficientStorage(ScimError):
    """507 (RFC 4918 11.5): the server cannot store what the request asked it to store."""

    def __init__(self) -> None:
        super().__init__(507, "the database's disk is full; nothing was written; retry once space is freed")
        self.headers = {"Retry-After": "30"}


def _taken(exc: UniqueViolation) -> ScimError:
    if not exc.attributes:
        return uniqueness(f"a {exc.resource_type} in this batch clashes on a unique attribute")
    return uniqueness(f"a {exc.resource_type} with the same {' or '.join(exc.attributes)} already exists")


def _not_found(exc: NotFound) -> ScimError:
    return not_found(f"{exc.resource_type} {exc.resource_id} not found")


def _version(exc: VersionConflict) -> ScimError:
    return precondition_failed(f'resource version is no longer W/"{exc.expected}", which If-Match named')


def _unavailable(exc: DatabaseUnavailable) -> ScimError:
    return Unavailable(str(exc))


def _disk_full(exc: DiskFull) -> ScimError:
    return InsufficientStorage()


#: Storage error -> SCIM error: 409 uniqueness, 404, 412 preconditionFailed, 503 with Retry-After,
#: 507. Keyed by exact type (tests/unit/test_storage_error_mapping.py checks it covers them all).
TABLE: dict[type[StorageError], Callable[[Any], ScimError]] = {
    UniqueViolation: _taken,
    NotFound: _not_found,
    VersionConflict: _version,
    DatabaseUnavailable: _unavailable,
    DiskFull: _disk_full,
}


def scim_error(exc: StorageError) -> ScimError:
    for kind in type(exc).__mro__:
        build = TABLE.get(kind)  # type: ignore[call-overload]
        if build is not None:
            return build(exc)
    raise TypeError(f"no SCIM error for {type(exc).__name__}")  # pragma: no cover - TABLE is complete


@contextmanager
def scim_errors() -> Iterator[None]:
    """Storage's errors raised inside leave as the SCIM errors of `TABLE`."""
    try:
        yield
    except StorageError as exc:
        raise scim_error(exc) from exc


def database_fault(exc: BaseException) -> ScimError | None:
    """The SCIM error for `exc` when it (or what it wraps) is a storage failure, else None (a bug:
    the caller answers 500). A SCIM 5xx found on the way (a passed deadline) is returned as is."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return None
        if isinstance(current, ScimError):
            return current if current.status >= 500 else None
        found = fault_of(current)
        if found is not None:
            return scim_error(found)
        current = wrapped(current)
    return None
