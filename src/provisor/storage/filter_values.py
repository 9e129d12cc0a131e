"""The filter compiler's candidate values and the contract of its per-database part.

storage/filter_sql.py compiles a filter to SQL over these values; what differs per database (how
a JSON value of the document is addressed and typed, a few string functions, the order of text)
is `Backend.filters`, declared here as `FilterSql` and implemented by storage/postgres/filter_sql.py
(JSONB) and storage/sqlite/filter_sql.py (JSON text with json_type/json_extract). This module must
not import storage/kind.py: those implementations import it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import and_, false, func, literal, true
from sqlalchemy.sql.elements import ColumnElement

from provisor.errors import invalid_filter

Bool = ColumnElement[bool]


class Val:
    """One candidate value in SQL, with type tests that are false (never NULL) on mismatch."""

    def is_str(self) -> Bool:
        raise NotImplementedError

    def text(self) -> ColumnElement[Any]:
        raise NotImplementedError

    def is_num(self) -> Bool:
        return false()

    def num(self) -> ColumnElement[Any]:
        return literal(None)

    def is_bool(self, value: bool) -> Bool:
        return false()

    def non_null(self) -> Bool:
        raise NotImplementedError

    def non_empty(self) -> Bool:
        raise NotImplementedError

    def is_object(self) -> Bool:
        return false()

    def field(self, name: str) -> Val:
        raise invalid_filter(f"sub-attribute {name!r} is not filterable here")

    lowercase_data = False


class ColumnValue(Val):
    """A string column standing for an attribute (id, meta.*, membership ids)."""

    def __init__(
        self, expr: ColumnElement[Any], *, lowercase_data: bool = False, nullable: bool = True
    ) -> None:
        self.expr = expr
        self.lowercase_data = lowercase_data
        #: False for a NOT NULL column: a comparison with it is then never unknown, and is left
        #: bare (no `coalesce(...)` around it) so that the column's index can serve it.
        self.nullable = nullable

    def is_str(self) -> Bool:
        return self.expr.is_not(None)

    def text(self) -> ColumnElement[Any]:
        return self.expr

    def non_null(self) -> Bool:
        return self.expr.is_not(None)

    def non_empty(self) -> Bool:
        return and_(self.expr.is_not(None), self.expr != "")


class RowValue(Val):
    """A `group_members` row seen as a `members`/`groups` element."""

    def __init__(self, fields: dict[str, ColumnValue]) -> None:
        self.fields = fields

    def field(self, name: str) -> Val:
        if name not in self.fields:
            raise invalid_filter(f"sub-attribute {name!r} of group membership is not filterable")
        return self.fields[name]

    def is_object(self) -> Bool:
        return true()

    def non_null(self) -> Bool:
        return true()

    def non_empty(self) -> Bool:
        return true()


#: A condition on one candidate value.
Make = Callable[[Val], Bool]


def definite(expr: Bool) -> Bool:
    """Two-valued: NULL (unknown) becomes false, exactly like a non-matching value in Python."""
    return func.coalesce(expr, false())


class FilterSql(Protocol):
    """One database's share of the filter compiler. Every value it returns answers the `Val`
    type tests as false (never NULL) on a mismatch, so the compiler's two-valued logic holds."""

    def document(self) -> Val:
        """The whole `resources.doc` of the row being filtered, as a JSON value."""
        ...

    def elements(self, container: Val, make: Make) -> Bool:
        """EXISTS an element of the JSON array `container` (a value of this database's, from
        `document`) for which `make` holds; false when `container` is not an array."""
        ...

    def primary(self, container: Val, sub: str | None) -> Val:
        """The element of the JSON array `container` whose `primary` is true, else its first
        element; its sub-attribute `sub` when given (a sort key)."""
        ...

    def lower(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        """`text` in lower case, for comparisons that ignore case (the literal is lowered in
        Python): SQLite's own lower() folds ASCII only, so SQLite uses Python's."""
        ...

    def position(self, text: ColumnElement[Any], needle: ColumnElement[Any]) -> ColumnElement[Any]:
        """The 1-based position of `needle` in `text`, 0 when absent (`co`)."""
        ...

    def tail(self, text: ColumnElement[Any], length: int) -> ColumnElement[Any]:
        """The last `length` characters of `text` (`ew`)."""
        ...

    def code_point_order(self, text: ColumnElement[Any]) -> ColumnElement[Any]:
        """`text` compared and sorted in code point order (the index's order, whatever the
        database's default collation): for gt/ge/lt/le, prefix ranges and sort keys."""
        ...

    def number(self, value: int | float | Decimal) -> ColumnElement[Any]:
        """A bound number that compares with the document's JSON numbers as the Python
        evaluator does (no float rounding of a decimal literal on PostgreSQL)."""
        ...
