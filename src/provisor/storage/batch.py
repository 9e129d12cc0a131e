"""Multi-row writes for bulk creation: one statement per table per chunk instead of per resource.

A Bulk or import of thousands of resources would otherwise pay a round trip and a transaction per
row; here N resources, their index rows and their events go in one transaction. PostgreSQL takes
each table's rows as one binary `COPY`, which spares it an executor start per row (a Bulk user is
about six rows). SQLite takes executemany: in chunks below its bound-parameter limit inside the
caller's transaction, or, for a batch that is a transaction of its own (`write_batch`), as one call
in the connection's thread with every parameter bound before the writer lock is taken.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.direct import DirectStatement, copy_rows, write_in_sqlite_thread
from provisor.storage.errors import UniqueViolation, is_unique_violation
from provisor.storage.json_columns import json_text
from provisor.storage.kind import backend
from provisor.storage.outbox import APPEND_EVENT
from provisor.storage.resources import INSERT_INDEX, IndexRow, StoredResource
from provisor.storage.tables import attribute_index, events, resources
from provisor.storage.transactions import write_transaction

#: Rows per INSERT statement; 9 columns x 1000 rows stays under the 32767-parameter limits.
CHUNK = 1000


@dataclass(frozen=True)
class NewRow:
    """One resource to insert, with everything already validated and computed."""

    id: str
    doc: dict[str, Any]
    index: Sequence[IndexRow]
    managed: bool = True


def _chunks(rows: Sequence[dict[str, Any]], size: int = CHUNK) -> Iterable[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def _insert_all(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if backend(conn).bulk_copy:
        columns = list(rows[0])
        encode = [isinstance(table.c[c].type, JSON) for c in columns]
        records = [
            tuple(
                json_text(value) if as_json and value is not None else value
                for value, as_json in zip(row.values(), encode, strict=True)
            )
            for row in rows
        ]
        await copy_rows(conn, table.name, columns, records)
        return
    for chunk in _chunks(rows):
        await conn.execute(insert(table), list(chunk))


@dataclass(frozen=True)
class PreparedBatch:
    """A batch's rows, built before its transaction opens, so that the transaction only sends
    them (on SQLite it holds the one writer lock of the whole database meanwhile)."""

    resources: list[dict[str, Any]]
    index: list[dict[str, Any]]
    stored: list[StoredResource]


def prepare_batch(*, tenant_id: str, resource_type: str, at: str, rows: Sequence[NewRow]) -> PreparedBatch:
    return PreparedBatch(
        resources=[
            {
                "tenant_id": tenant_id,
                "id": row.id,
                "resource_type": resource_type,
                "version": 1,
                "created": at,
                "last_modified": at,
                "doc": row.doc,
                "managed": row.managed,
            }
            for row in rows
        ],
        index=[
            {
                "tenant_id": tenant_id,
                "resource_type": resource_type,
                "attr": attr,
                "value_norm": value,
                "resource_id": row.id,
                "is_unique": unique,
            }
            for row in rows
            for attr, value, unique in row.index
        ],
        stored=[StoredResource(row.id, resource_type, 1, at, at, row.doc) for row in rows],
    )


async def insert_many(conn: AsyncConnection, batch: PreparedBatch) -> list[StoredResource]:
    """Insert resources and their index rows; a uniqueness clash raises 409 for the whole batch."""
    await _insert_all(conn, resources, batch.resources)
    try:
        await _insert_all(conn, attribute_index, batch.index)
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise _clash(batch) from exc
        raise
    return batch.stored


async def append_events(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert prepared event rows (the outbox) in multi-row statements."""
    await _insert_all(conn, events, rows)


#: One resource row as `prepare_batch` builds it (with `managed`, which single creates leave to
#: the column's default); index rows and events use the single writes' statements.
_INSERT_RESOURCE = DirectStatement(
    insert(resources).values(
        {c.name: bindparam(c.name, type_=c.type) for c in resources.c if c.name != "deleted_at"}
    )
)


async def write_batch(
    engine: AsyncEngine, batch: PreparedBatch, event_rows: Sequence[dict[str, Any]]
) -> list[StoredResource]:
    """`insert_many` and `append_events` in one transaction of their own.

    On SQLite the statements' parameters are bound before the writer lock is taken, and the
    transaction is one call in the connection's thread (`write_in_sqlite_thread`): the lock is then
    held for SQLite's own work, not for SQLAlchemy's per-row processing and a thread hop per
    statement."""
    if not backend(engine).serial_writer:
        async with write_transaction(engine) as conn:
            stored = await insert_many(conn, batch)
            await append_events(conn, event_rows)
        return stored
    bound = []
    for statement, rows in (
        (_INSERT_RESOURCE, batch.resources),
        (INSERT_INDEX, batch.index),
        (APPEND_EVENT, event_rows),
    ):
        compiled = statement.compiled(engine.dialect)
        bound.append((compiled.sql, [compiled.args(row) for row in rows]))

    def steps(db: sqlite3.Connection) -> None:
        for sql, args in bound:
            if args:
                db.executemany(sql, args)

    try:
        await write_in_sqlite_thread(engine, steps)
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise _clash(batch) from exc
        raise
    return batch.stored


def _clash(batch: PreparedBatch) -> UniqueViolation:
    """Which row clashed is not known (nor whether with the table or within the batch)."""
    return UniqueViolation(batch.stored[0].resource_type if batch.stored else "resource")


async def is_managed(conn: AsyncConnection, tenant_id: str, resource_id: str) -> bool | None:
    row = (
        await conn.execute(
            select(resources.c.managed).where(
                resources.c.tenant_id == tenant_id, resources.c.id == resource_id
            )
        )
    ).first()
    return None if row is None else bool(row[0])


async def set_managed(conn: AsyncConnection, tenant_id: str, resource_id: str, managed: bool) -> None:
    await conn.execute(
        update(resources)
        .where(resources.c.tenant_id == tenant_id, resources.c.id == resource_id)
        .values(managed=managed)
    )


async def find_by_index(
    conn: AsyncConnection, tenant_id: str, resource_type: str, attr: str, values: Sequence[str]
) -> dict[str, str]:
    """Map each normalised value of `attr` to the id of the resource holding it (first found)."""
    out: dict[str, str] = {}
    for start in range(0, len(values), CHUNK):
        chunk = list(values[start : start + CHUNK])
        rows = await conn.execute(
            select(attribute_index.c.value_norm, attribute_index.c.resource_id).where(
                attribute_index.c.tenant_id == tenant_id,
                attribute_index.c.resource_type == resource_type,
                attribute_index.c.attr == attr,
                attribute_index.c.value_norm.in_(chunk),
            )
        )
        for value, resource_id in rows:
            out.setdefault(value, resource_id)
    return out
