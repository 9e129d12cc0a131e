"""The one mapping from storage's errors to SCIM errors (provisor/service/errors.py)."""

from __future__ import annotations

import sqlite3

import pytest
from asyncpg import exceptions as pg
from sqlalchemy.exc import IntegrityError, OperationalError

from provisor.budget import Unavailable
from provisor.errors import ScimError
from provisor.service.errors import TABLE, InsufficientStorage, database_fault, scim_error, scim_errors
from provisor.storage import errors as storage_errors
from provisor.storage.errors import (
    DatabaseUnavailable,
    DiskFull,
    NotFound,
    StorageError,
    UniqueViolation,
    VersionConflict,
    is_unique_violation,
)

CASES: list[tuple[StorageError, int, str | None, str]] = [
    (
        UniqueViolation("User", ["userName"]),
        409,
        "uniqueness",
        "a User with the same userName already exists",
    ),
    (
        UniqueViolation("User", ["userName", "externalId"]),
        409,
        "uniqueness",
        "a User with the same externalId or userName already exists",
    ),
    (UniqueViolation("Group"), 409, "uniqueness", "a Group in this batch clashes on a unique attribute"),
    (NotFound("User", "u-1"), 404, None, "User u-1 not found"),
    (VersionConflict("User", "u-1", 3), 412, "preconditionFailed", 'no longer W/"3"'),
    (DatabaseUnavailable("the database is unavailable; nothing was written"), 503, None, "unavailable"),
    (DiskFull("full"), 507, None, "disk is full"),
]


@pytest.mark.parametrize(("error", "status", "scim_type", "detail"), CASES)
def test_each_storage_error_has_its_scim_error(
    error: StorageError, status: int, scim_type: str | None, detail: str
) -> None:
    mapped = scim_error(error)
    assert (mapped.status, mapped.scim_type) == (status, scim_type)
    assert detail in mapped.detail


def test_the_table_covers_every_storage_error_and_nothing_else() -> None:
    defined = {
        value
        for value in vars(storage_errors).values()
        if isinstance(value, type) and issubclass(value, StorageError) and value is not StorageError
    }
    assert set(TABLE) == defined
    assert {type(case[0]) for case in CASES} == defined


def test_outage_answers_carry_retry_after() -> None:
    assert isinstance(scim_error(DatabaseUnavailable("down")), Unavailable)
    full = scim_error(DiskFull("full"))
    assert isinstance(full, InsufficientStorage) and full.headers == {"Retry-After": "30"}


def test_scim_errors_translates_storage_errors_only() -> None:
    with pytest.raises(ScimError) as raised, scim_errors():
        raise NotFound("Group", "g-1")
    assert raised.value.status == 404
    with pytest.raises(KeyError), scim_errors():
        raise KeyError("not storage's")


def _sqlite_error(cls: type[sqlite3.Error], code: int) -> sqlite3.Error:
    exc = cls("message text is not looked at")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


def test_driver_faults_are_classified_by_code() -> None:
    busy = OperationalError("", (), _sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_BUSY))
    full = OperationalError("", (), _sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_FULL))
    bug = OperationalError("", (), _sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_ERROR))
    assert getattr(database_fault(busy), "status", None) == 503
    assert getattr(database_fault(full), "status", None) == 507
    assert database_fault(bug) is None
    assert getattr(database_fault(pg.DiskFullError("x")), "status", None) == 507
    assert getattr(database_fault(pg.CannotConnectNowError("x")), "status", None) == 503
    assert getattr(database_fault(UniqueViolation("User", ["userName"])), "status", None) == 409
    assert database_fault(ValueError("a bug")) is None


def test_unique_violations_are_recognised_by_code_not_text() -> None:
    unique = _sqlite_error(sqlite3.IntegrityError, sqlite3.SQLITE_CONSTRAINT_UNIQUE)
    primary = _sqlite_error(sqlite3.IntegrityError, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
    assert is_unique_violation(IntegrityError("", (), unique))
    assert not is_unique_violation(IntegrityError("", (), primary))
    on_index = pg.UniqueViolationError("no index name in this text")
    on_index.constraint_name = storage_errors.UNIQUE_INDEX  # type: ignore[attr-defined]
    on_index.sqlstate = storage_errors.PG_UNIQUE_VIOLATION  # type: ignore[misc]
    elsewhere = pg.UniqueViolationError("ux_attribute_index_unique")
    elsewhere.constraint_name = "tokens_secret_hash_key"  # type: ignore[attr-defined]
    assert is_unique_violation(IntegrityError("", (), on_index))
    assert not is_unique_violation(IntegrityError("", (), elsewhere))
