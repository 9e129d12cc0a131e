"""Pruning an append-only log (the event log, the request log) in short batches whose plans do not
depend on the planner's statistics.

A log's rows get their key (a sequence, an autoincrement id) when they are written, so its oldest
rows come first in key order. `DELETE ... WHERE at < cutoff` was planned as a sequential scan of
the whole log on a PostgreSQL table never analyzed (the request log: every request adds a row, and
no statistics keeper covers it), and always for the event log, which has no index on `at`. It also
deleted everything in one transaction, which on SQLite holds the writers' gate for as long.

A batch instead reads the rows whose keys lie in the next `limit` keys from the first one after
the last batch (`key >= min(key > after) AND key < that + limit`: a range of the primary key whose
bounds the planner cannot know, so it takes PostgreSQL's default selectivity of a two-sided range,
0.5% of the rows, whatever the statistics, and SQLite seeks by rowid), then deletes the old rows
among them by a range of that key (`key BETWEEN first AND last AND at < cutoff`, the bounds out of
the planner's sight: `key_range`). The first key
after a gap comes from `min(key)`, which both databases answer from the index's edge. An
`ORDER BY key LIMIT n` read was not enough: with no statistics PostgreSQL costs it as `n` random
heap reads and chose a sequential scan and a sort for a log of 20,000 rows.

A prune ends at the first batch that holds a row written at or after the cutoff, or at the end of
the log: rows are written nearly in key order, so what is left older than the cutoff is the odd
row among the newest, pruned next time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, ColumnElement, Table, and_, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

#: Rows read per batch: each batch is one short transaction of the caller's.
PRUNE_BATCH = 1000

#: The keys in `first..last` that must stay (`prune_batch`'s `keep`).
Keep = Callable[[AsyncConnection, int, int], Awaitable[list[int]]]


@dataclass(frozen=True)
class PruneBatch:
    """What one batch did: rows deleted, the last key read (the next batch reads after it), and
    whether the prune is over."""

    deleted: int
    last: int
    done: bool
    #: The range of keys the batch deleted from (None when it deleted nothing).
    span: tuple[int, int] | None = None


def key_range(column: ColumnElement[Any], first: int, last: int) -> ColumnElement[bool]:
    """`first <= column <= last`, with bounds PostgreSQL plans without seeing (each a sub-select,
    an InitPlan): it then takes the default selectivity of a two-sided range and reads the index.
    With the values in sight, statistics taken at 200 rows made it estimate 15,252 of 20,000 rows
    for a range of 1,000 keys, and scan the table. SQLite seeks by the values all the same."""
    return and_(column >= _opaque(first), column <= _opaque(last))


def _opaque(value: int) -> ColumnElement[Any]:
    return select(literal(int(value), BigInteger())).scalar_subquery()


async def prune_batch(
    conn: AsyncConnection,
    table: Table,
    key: Column[Any],
    at: Column[Any],
    older_than: str,
    *,
    after: int = 0,
    below: int | None = None,
    keep: Keep | None = None,
    limit: int = PRUNE_BATCH,
) -> PruneBatch:
    """Delete the rows of `table` logged before `older_than` among the next `limit` keys after
    `after` (0: from the first; and under `below`, when given), except the keys `keep` names in
    the range about to be deleted (read apart, by a range of its own: an anti-join in the
    `DELETE` was planned as a hash join over the whole of the other table)."""
    bounds = [key < below] if below is not None else []
    start = select(func.min(key)).where(key > after, *bounds).scalar_subquery()
    window = (
        select(key, (at < older_than).label("old"))
        .where(key >= start, key < start + limit, *bounds)
        .order_by(key)
    )
    rows = (await conn.execute(window)).all()
    if not rows:  # no key after `after`: the end of the log
        return PruneBatch(0, after, True)
    old = [int(row[0]) for row in rows if row[1]]
    last = int(rows[-1][0])
    done = len(old) < len(rows)
    if not old:
        return PruneBatch(0, last, done)
    span = (old[0], old[-1])
    condition = and_(key_range(key, *span), at < older_than)
    kept = await keep(conn, *span) if keep is not None else []
    if kept:
        condition = and_(condition, key.not_in(kept))
    result = await conn.execute(delete(table).where(condition))
    return PruneBatch(int(result.rowcount or 0), last, done, span)
