"""Fault-injection fixtures: a database of the test's own on SQLite or on a PostgreSQL server of
the test's own (tests/faults/pg_instance.py), which the test may lock, stop or kill."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _migrate, _own_postgres_database, _run
from tests.faults.pg_instance import PgInstance, pg_instance

__all__ = ["pg_instance"]


@pytest.fixture(params=["sqlite", "postgresql"])
def fault_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's own: a SQLite file, or a database on the module's own
    PostgreSQL server (`pg_instance`, which the test may stop or kill)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'faults.db'}"
        _run(_migrate(url))
        yield url
        return
    instance: PgInstance = request.getfixturevalue("pg_instance")
    if instance.postmaster_pid() is None:
        instance.start()
    with _own_postgres_database(instance.admin_url, "faults") as url:
        yield url


@pytest.fixture
def fault_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
