"""The migrations build the schema the code declares (storage/tables.py), on SQLite and PostgreSQL.

Tables, columns, indexes and foreign keys are compared by name and column list: an index or key
added to `tables.py` without a migration (or dropped by a migration and left in `tables.py`) fails
here instead of leaving production databases different from test expectations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from provisor.storage.engine import create_engine
from provisor.storage.migrate import _alembic_config
from provisor.storage.tables import attribute_index, metadata, resources

#: Alembic's own bookkeeping table, not declared in `tables.py`.
_ALEMBIC = "alembic_version"

#: A foreign key as (its columns, the referred table, the referred columns).
ForeignKey = tuple[tuple[str, ...], str, tuple[str, ...]]
#: Per table: its column names, its indexes as (name, column names), and its foreign keys.
Shape = dict[str, tuple[frozenset[str], frozenset[tuple[str, tuple[str, ...]]], frozenset[ForeignKey]]]


def _declared() -> Shape:
    out = {}
    for table in metadata.sorted_tables:
        columns = frozenset(c.name for c in table.columns)
        indexes = frozenset(
            (str(index.name), tuple(str(c.name) for c in index.columns)) for index in table.indexes
        )
        keys = frozenset(
            (
                tuple(str(c.name) for c in key.columns),
                key.referred_table.name,
                tuple(str(e.column.name) for e in key.elements),
            )
            for key in table.foreign_key_constraints
        )
        out[table.name] = (columns, indexes, keys)
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
            keys = frozenset(
                (tuple(k["constrained_columns"]), k["referred_table"], tuple(k["referred_columns"]))
                for k in inspector.get_foreign_keys(name)
            )
            out[name] = (columns, indexes, keys)
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
    for name, (columns, indexes, keys) in declared.items():
        assert migrated[name][0] == columns, f"columns of {name}"
        assert migrated[name][1] == indexes, f"indexes of {name}"
        assert migrated[name][2] == keys, f"foreign keys of {name}"


def test_lookups_by_id_need_no_index_of_their_own(fresh_database_url: str) -> None:
    """Migration 0007 dropped `ix_resources_type_id`; the primary key serves those lookups."""
    _, indexes, _ = _migrated(fresh_database_url)["resources"]
    assert "ix_resources_type_id" not in {name for name, _ in indexes}


def test_index_rows_have_no_foreign_key_and_keep_their_partial_unique_index(fresh_database_url: str) -> None:
    """Migration 0008 dropped the key (SQLite rebuilds the table for it); uniqueness must still
    cover only the `is_unique` rows, or two users could not share an email address."""
    _, indexes, keys = _migrated(fresh_database_url)["attribute_index"]
    assert keys == frozenset()
    assert ("ux_attribute_index_unique", ("tenant_id", "resource_type", "attr", "value_norm")) in indexes

    async def insert_twice() -> None:
        engine = create_engine(fresh_database_url)
        try:
            async with engine.begin() as conn:
                row = {"tenant_id": "t", "resource_type": "User", "attr": "emails.value", "value_norm": "a@b"}
                shared = [{**row, "resource_id": r} for r in ("u1", "u2")]
                await conn.execute(attribute_index.insert(), shared)
                unique = {**row, "attr": "userName", "is_unique": True}
                await conn.execute(attribute_index.insert(), [{**unique, "resource_id": "u1"}])
                with pytest.raises(IntegrityError):
                    async with conn.begin_nested():
                        await conn.execute(attribute_index.insert(), [{**unique, "resource_id": "u2"}])
        finally:
            await engine.dispose()

    asyncio.run(insert_twice())


def test_0008_keeps_the_index_rows_of_an_existing_database(fresh_database_url: str) -> None:
    """Down to 0007 (the key comes back), rows written there, up again: SQLite rebuilds the table,
    so every row must survive it, and uniqueness must still hold for `is_unique` rows only."""
    at = "2026-12-02T10:00:00.000000Z"
    users = [
        {"tenant_id": "t", "id": uid, "resource_type": "User", "version": 1, "created": at}
        | {"last_modified": at, "doc": {"userName": uid}}
        for uid in ("u1", "u2")
    ]
    rows = [
        {"tenant_id": "t", "resource_type": "User", "resource_id": uid, "attr": attr}
        | {"value_norm": value, "is_unique": unique}
        for uid in ("u1", "u2")
        for attr, value, unique in (("userName", uid, True), ("emails.value", "shared@x", False))
    ]

    def to(revision: str) -> Callable[[Any], None]:
        def step(sync_conn: Any) -> None:
            move = command.upgrade if revision == "head" else command.downgrade
            move(_alembic_config(sync_conn), revision)

        return step

    def phase(work: Callable[[Any], Any]) -> Any:
        async def main() -> Any:
            engine = create_engine(fresh_database_url)
            try:
                async with engine.begin() as conn:
                    return await work(conn)
            finally:
                await engine.dispose()

        return asyncio.run(main())

    async def write(conn: Any) -> None:
        await conn.execute(resources.insert(), users)
        await conn.execute(attribute_index.insert(), rows)

    async def read(conn: Any) -> set[tuple[Any, ...]]:
        with pytest.raises(IntegrityError):
            async with conn.begin_nested():
                await conn.execute(attribute_index.insert(), [{**rows[0], "resource_id": "u3"}])
        return {tuple(r) for r in await conn.execute(select(*attribute_index.c))}

    phase(lambda conn: conn.run_sync(to("0007")))
    assert _migrated(fresh_database_url)["attribute_index"][2] != frozenset()  # the key is back
    phase(write)
    phase(lambda conn: conn.run_sync(to("head")))
    assert _migrated(fresh_database_url)["attribute_index"][2] == frozenset()
    assert phase(read) == {tuple(r[c.name] for c in attribute_index.c) for r in rows}
