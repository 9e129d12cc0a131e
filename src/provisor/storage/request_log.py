"""The request log table: batch inserts, paged reads for `log tail` and the admin API, pruning."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.direct import DirectStatement, copy_rows, write_in_sqlite_thread
from provisor.storage.kind import backend
from provisor.storage.log_pruning import PRUNE_BATCH, prune_batch
from provisor.storage.tables import request_log, unknown_attributes
from provisor.storage.transactions import write_transaction

COLUMNS = (
    "at",
    "tenant_id",
    "request_id",
    "method",
    "path",
    "query",
    "status",
    "duration_ms",
    "token_name",
    "request_body",
    "response_body",
    "unknown_attributes",
)


@dataclass(frozen=True)
class RequestFilter:
    tenant: str | None = None
    errors_only: bool = False


#: Built once and run on the driver connection: every request adds a row (storage/direct.py).
_INSERT = DirectStatement(
    request_log.insert().values({c: bindparam(c, type_=request_log.c[c].type) for c in COLUMNS})
)


async def append(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """Append a batch, committed when this returns. Every request adds a row, so the row's cost is
    on every request's bill:
    - PostgreSQL `COPY`s it in a transaction of its own: 6-10 µs of CPU per row, against 17-19 µs
      per row inserted (docs/performance.md);
    - SQLite inserts it as one of the worker's queued writes (`write_in_sqlite_thread`): it joins
      the next transaction, in the connection's thread. A transaction of its own held the writers'
      gate across several hops between the event loop and that thread, while every writer of
      every worker waited."""
    kind = backend(engine)
    if kind.serial_writer:
        compiled = _INSERT.compiled(engine.dialect)
        args = [compiled.args(row) for row in rows]

        def steps(db: sqlite3.Connection) -> None:
            db.executemany(compiled.sql, args)

        await write_in_sqlite_thread(engine, steps)
        return
    async with write_transaction(engine) as conn:
        await copy_rows(conn, request_log.name, COLUMNS, [tuple(r[c] for c in COLUMNS) for r in rows])


def encode_names(names: tuple[str, ...] | list[str]) -> str | None:
    """The `unknown_attributes` column's form: a JSON list, NULL for none."""
    return orjson.dumps(list(names)).decode() if names else None


async def read_requests(
    conn: AsyncConnection, after: int, limit: int, where: RequestFilter | None = None
) -> list[dict[str, Any]]:
    """Rows with id > `after`, oldest first (ids grow with insertion time within a worker)."""
    query = select(request_log).where(request_log.c.id > after).order_by(request_log.c.id).limit(limit)
    if where is not None and where.tenant is not None:
        query = query.where(request_log.c.tenant_id == where.tenant)
    if where is not None and where.errors_only:
        query = query.where(request_log.c.status >= 400)
    rows = [{str(k): v for k, v in r.items()} for r in (await conn.execute(query)).mappings().all()]
    for row in rows:
        names = row.get("unknown_attributes")
        row["unknown_attributes"] = orjson.loads(names) if names else None
    return rows


async def latest_id(conn: AsyncConnection) -> int:
    value = (await conn.execute(select(func.max(request_log.c.id)))).scalar()
    return int(value or 0)


async def prune(engine: AsyncEngine, older_than: str, *, batch: int = PRUNE_BATCH) -> int:
    """Delete the rows logged before `older_than`, oldest first, `batch` ids per transaction
    (storage/log_pruning.py); how many."""
    deleted, after = 0, 0
    while True:
        async with write_transaction(engine) as conn:
            done = await prune_batch(
                conn, request_log, request_log.c.id, request_log.c.at, older_than, after=after, limit=batch
            )
        deleted, after = deleted + done.deleted, done.last
        if done.done:
            return deleted


@dataclass
class UnknownCount:
    """How often one tenant's requests carried one unknown attribute since the last flush."""

    count: int
    last_seen: str


async def add_unknown_counts(conn: AsyncConnection, counts: dict[tuple[str, str], UnknownCount]) -> None:
    """Fold a batch of counts into `unknown_attributes`: one upsert per (tenant, name) in the batch."""
    if not counts:
        return
    rows = [
        {"tenant_id": tenant, "name": name, "count": seen.count, "last_seen": seen.last_seen}
        for (tenant, name), seen in sorted(counts.items())  # one lock order for concurrent writers
    ]
    statement = backend(conn).insert(unknown_attributes)
    table = unknown_attributes.c
    statement = statement.on_conflict_do_update(
        index_elements=[table.tenant_id, table.name],
        set_={
            "count": table.count + statement.excluded.count,
            "last_seen": case(
                (statement.excluded.last_seen > table.last_seen, statement.excluded.last_seen),
                else_=table.last_seen,
            ),
        },
    )
    await conn.execute(statement, rows)


async def read_unknown_counts(conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
    """A tenant's unknown attributes, the most frequent first."""
    table = unknown_attributes.c
    query = (
        select(table.name, table.count, table.last_seen)
        .where(table.tenant_id == tenant_id)
        .order_by(table.count.desc(), table.name)
    )
    return [{str(k): v for k, v in r.items()} for r in (await conn.execute(query)).mappings().all()]
