"""The contracts of the small per-database parts of storage (`Backend`'s fields besides members).

Each Protocol says what both databases' implementations promise; `storage/postgres/` and
`storage/sqlite/` implement them and mypy checks each against it where `Backend` is built. The
portable modules that call them (storage/consumers.py, request_log.py, ...) import
`storage/kind.py`; this module and the implementations must not, or the imports would cycle.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Table


class OnConflictInsert(Protocol):
    """The database's own `insert()` construct (`sqlalchemy.dialects.<kind>.insert`)."""

    def __call__(self, table: Table) -> Any:
        """An INSERT into `table` that offers `on_conflict_do_nothing()`,
        `on_conflict_do_update(index_elements=..., set_=...)` and `.excluded`, with the same
        meaning on both databases (the SQL is `INSERT ... ON CONFLICT` on both)."""
        ...
