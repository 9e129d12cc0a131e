"""SQLite's share of the filter compiler (`storage.filter_values.FilterSql`): the document is JSON
text, addressed as (document, path) for `json_type` and `json_extract`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import String, and_, case, exists, false, func, literal, select, true
from sqlalchemy.sql.elements import ColumnElement

from provisor.storage.filter_values import Bool, Make, Val
from provisor.storage.tables import resources


class SqliteJson(Val):
    """A JSON value addressed as (document, path) for SQLite's json_type/json_extract."""

    def __init__(self, root: ColumnElement[Any], path: ColumnElement[Any]) -> None:
        self.root = root
        self.path = path
        self.typ = func.json_type(root, path)
        self.raw = func.json_extract(root, path)

    def field(self, name: str) -> Val:
        return SqliteJson(self.root, self.path.concat(literal(f'."{name}"', String)))

    def is_str(self) -> Bool:
        return self.typ == "text"

    def text(self) -> ColumnElement[Any]:
        return self.raw

    def is_num(self) -> Bool:
        return self.typ.in_(("integer", "real"))

    def num(self) -> ColumnElement[Any]:
        return self.raw

    def is_bool(self, value: bool) -> Bool:
        return self.typ == ("true" if value else "false")

    def is_object(self) -> Bool:
        return self.typ == "object"

    def non_null(self) -> Bool:
        return and_(self.typ.is_not(None), self.typ != "null")

    def non_empty(self) -> Bool:
        return case(
            (self.typ.is_(None), false()),
            (self.typ == "text", self.raw != ""),
            (self.typ == "array", func.json_array_length(self.root, self.path) > 0),
            (self.typ == "object", self.raw != "{}"),
            (self.typ == "null", false()),
            else_=true(),
        )


def document() -> Val:
    return SqliteJson(resources.c.doc, literal("$", String))


def elements(container: Val, make: Make) -> Bool:
    assert isinstance(container, SqliteJson)
    tv = func.json_each(container.root, container.path).table_valued("fullkey").alias()
    element = SqliteJson(container.root, tv.c.fullkey)
    return exists(select(literal(1)).select_from(tv).where(container.typ == "array", make(element)))


def primary(container: Val, sub: str | None) -> Val:
    assert isinstance(container, SqliteJson)
    tv = func.json_each(container.root, container.path).table_valued("fullkey").alias()
    element = SqliteJson(container.root, tv.c.fullkey)
    chosen_key = select(tv.c.fullkey).where(element.field("primary").is_bool(True)).limit(1).scalar_subquery()
    key = func.coalesce(chosen_key, container.path.concat(literal("[0]", String)))
    chosen_val = SqliteJson(container.root, key)
    return chosen_val.field(sub) if sub else chosen_val


def lower(text: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQLite's own lower() folds ASCII only: `scim_lower` is Python's, registered on every
    connection (storage/sqlite/engine.py)."""
    return func.scim_lower(text)


def position(text: ColumnElement[Any], needle: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.instr(text, needle)


def tail(text: ColumnElement[Any], length: int) -> ColumnElement[Any]:
    return func.substr(text, -length)


def code_point_order(text: ColumnElement[Any]) -> ColumnElement[Any]:
    """SQLite's default collation, BINARY, is code point order already."""
    return text


def number(value: int | float | Decimal) -> ColumnElement[Any]:
    if isinstance(value, Decimal):
        return literal(int(value) if value == value.to_integral_value() else float(value))
    return literal(value)
