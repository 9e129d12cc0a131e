"""The migrations build the schema the code declares (storage/tables.py), on SQLite and PostgreSQL.

Tables, columns and indexes are compared by name and column list: an index added to `tables.py`
without a migration (or dropped by a migration and left in `tables.py`) fails here instead of
leaving production databases different from test expectations.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import inspect

from provisor.storage.engine import create_engine
from provisor.storage.tables import metadata

#: Alembic's own bookkeeping table, not declared in `tables.py`.
_ALEMBIC = "alembic_version"

#: Per table: its column names, and its indexes as (name, column names).
Shape = dict[str, tuple[frozenset[str], frozenset[tuple[str, tuple[str, ...]]]]]


def _declared() -> Shape:
    out = {}
    for table in metadata.sorted_tables:
        columns = frozenset(c.name for c in table.columns)
        indexes = frozenset(
            (str(index.name), tuple(str(c.name) for c in index.columns)) for index in table.indexes
        )
        out[table.name] = (columns, indexes)
    return out


def _migrated(url: str) -> Shape:
    def read(sync_conn: Any) -> Shape:
        inspector = inspect(sync_conn)
        out = {}
        for name in inspector.get_table_names():
            if name == _ALEMBIC:
                continue
            columns = frozenset(c["name"] for c in inspector.get_columns(name))
            indexes = frozenset(
                (str(i["name"]), tuple(str(c) for c in i["column_names"]))
                for i in inspector.get_indexes(name)
                if not i.get("duplicates_constraint")  # PostgreSQL lists a UNIQUE column's index too
            )
            out[name] = (columns, indexes)
        return out

    async def main() -> Shape:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(read)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_migrated_schema_matches_the_declared_tables(fresh_database_url: str) -> None:
    declared, migrated = _declared(), _migrated(fresh_database_url)
    assert sorted(migrated) == sorted(declared)
    for name, (columns, indexes) in declared.items():
        assert migrated[name][0] == columns, f"columns of {name}"
        assert migrated[name][1] == indexes, f"indexes of {name}"


def test_lookups_by_id_need_no_index_of_their_own(fresh_database_url: str) -> None:
    """Migration 0007 dropped `ix_resources_type_id`; the primary key serves those lookups."""
    _, indexes = _migrated(fresh_database_url)["resources"]
    assert "ix_resources_type_id" not in {name for name, _ in indexes}
