"""Statements built once and compiled once per database kind: the building block of the hot paths.

The hot reads and writes (storage/direct.py) are written with SQLAlchemy Core, compiled here once
per kind of database, and then sent to the driver with their parameters in the compiled order.
This module runs nothing: both databases' drivers (storage/postgres/driver.py,
storage/sqlite/driver.py) and the portable modules build on it, so it imports neither of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ARRAY, JSON, Integer, bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.selectable import TextualSelect

Row = Sequence[Any]

_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)

#: Reads of at most this many rows (a filter's page, a page's groups) count as reads by key.
BY_KEY_ROWS = 200

#: The parameter a batched statement selects as its last column (storage/coalesce.py).
CALL = "call"


@dataclass(frozen=True)
class Compiled:
    sql: str
    order: tuple[str, ...]  # positional parameter names
    defaults: Mapping[str, Any]  # values bound at build time (literals in the statement)
    processors: Mapping[str, Callable[[Any], Any]]  # e.g. JSON parameters serialised to text
    json_columns: tuple[int, ...]  # result columns of a JSON type (a driver may return them as text)
    call_index: int | None  # position of the `call` parameter (statements run by `fetch_batched`)
    writes: bool  # commits when run outside a transaction (provisor/budget.py)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name in self.order:
            if name in params:
                value = params[name]
                process = self.processors.get(name)
                out.append(process(value) if process is not None and value is not None else value)
            else:
                out.append(self.defaults[name])
        return out

    def decoded(self, rows: list[Row]) -> list[Row]:
        """`rows` with the JSON columns decoded, for a driver that returns them as text (sqlite3;
        asyncpg decodes them itself, with the codec SQLAlchemy registers)."""
        return [_decoded(row, self.json_columns) for row in rows] if self.json_columns else rows


def call_column() -> BindParameter[Any]:
    """The `call` column of a batched statement: 0 for a lone call, the call's place in a batch."""
    return bindparam(CALL, 0, type_=Integer)


class DirectStatement:
    """A statement built once and compiled once per kind of database, run by a `DirectReader`'s
    `fetch` (outside transactions) or by `execute` / `execute_many` (inside the caller's
    transaction): storage/direct.py."""

    def __init__(
        self,
        statement: ClauseElement,
        *,
        lock_order: Callable[[Mapping[str, Any]], Any] | None = None,
        by_key: bool = False,
    ) -> None:
        """`lock_order`: for writes run by `fetch_batched`, the key a batch is sorted by so that
        concurrent batches lock rows in one order (storage/coalesce.py). `by_key`: a read of a few
        rows through an index, which SQLite may run on the event loop's thread (`fetch`)."""
        self.statement = statement
        self.lock_order = lock_order
        self.by_key = by_key
        selected = statement.selected_columns if isinstance(statement, Select | TextualSelect) else ()
        self.columns: tuple[str, ...] = tuple(str(c.key) for c in selected)
        self._json = tuple(i for i, c in enumerate(selected) if isinstance(c.type, JSON))
        #: Keyed by the dialect's class: one compilation per kind of database, whatever the engine.
        self._compiled: dict[type[Dialect], Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._compiled.get(type(dialect))
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            order = tuple(compiled.positiontup or ())
            defaults = {k: _processed(b, dialect) for k, b in compiled.binds.items() if b.value is not None}
            processors = {
                k: process for k, b in compiled.binds.items() if (process := _bind_processor(b, dialect))
            }
            call = order.index(CALL) if CALL in order else None
            writes = bool(_WRITES.search(compiled.string))
            found = Compiled(compiled.string, order, defaults, processors, self._json, call, writes)
            self._compiled[type(dialect)] = found
        return found


def _bind_processor(bind: BindParameter[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """What a parameter's value goes through before the driver sees it.

    SQLAlchemy's own processors are kept except where they only cost time on this path (about
    10 µs for a user document, 1-3 µs per array, on every write): a JSON value is serialised by
    the engine's serializer directly (values here are never SQLAlchemy's JSON.NULL sentinels, and
    None means SQL NULL, see `Compiled.args`), and an array of plain items goes to the driver as the
    list it is (arrays are PostgreSQL's: only its statements take them).
    """
    if isinstance(bind.type, JSON):
        serializer: Callable[[Any], str] | None = getattr(dialect, "_json_serializer", None)
        if serializer is not None:
            return serializer
    if isinstance(bind.type, ARRAY):
        item = bind.type.item_type.dialect_impl(dialect).bind_processor(dialect)
        if item is None:
            return None
    processor: Callable[[Any], Any] | None = bind.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _processed(bind: BindParameter[Any], dialect: Dialect) -> Any:
    """A value fixed at build time, as the dialect sends it (e.g. a JSON path on SQLite)."""
    process = bind.type.dialect_impl(dialect).bind_processor(dialect)
    return process(bind.value) if process else bind.value


def _decoded(row: Row, columns: tuple[int, ...]) -> Row:
    values = list(row)
    for i in columns:
        if isinstance(values[i], (str, bytes)):
            values[i] = orjson.loads(values[i])
    return values
