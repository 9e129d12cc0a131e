"""PostgreSQL's share of the filter compiler (`storage.filter_values.FilterSql`): the document is
JSONB, addressed with `->` and typed with `jsonb_typeof`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Numeric,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from provisor.storage.filter_values import Bool, Make, Val
from provisor.storage.tables import resources


class PgJson(Val):
    """A JSONB expression on PostgreSQL."""

    def __init__(self, ref: ColumnElement[Any]) -> None:
        self.ref = ref
        self.typ = func.jsonb_typeof(ref)

    def field(self, name: str) -> Val:
        return PgJson(self.ref.op("->", return_type=JSONB)(literal(name, String)))

    def is_str(self) -> Bool:
        return self.typ == "string"

    def text(self) -> ColumnElement[Any]:
        return self.ref.op("#>>", return_type=String)(literal_column("'{}'::text[]"))

    def is_num(self) -> Bool:
        return self.typ == "number"

    def num(self) -> ColumnElement[Any]:
        return case((self.typ == "number", cast(self.text(), Numeric)), else_=None)

    def is_bool(self, value: bool) -> Bool:
        return and_(self.typ == "boolean", self.text() == ("true" if value else "false"))

    def is_object(self) -> Bool:
        return self.typ == "object"

    def non_null(self) -> Bool:
        return and_(self.typ.is_not(None), self.typ != "null")

    def non_empty(self) -> Bool:
        return case(
            (self.typ.is_(None), false()),
            (self.typ == "string", self.text() != ""),
            (self.typ == "array", func.jsonb_array_length(self.ref) > 0),
            (self.typ == "object", self.ref != literal_column("'{}'::jsonb")),
            (self.typ == "null", false()),
            else_=true(),
        )


def document() -> Val:
    return PgJson(resources.c.doc)


def elements(container: Val, make: Make) -> Bool:
    assert isinstance(container, PgJson)
    array = case((container.typ == "array", container.ref), else_=literal_column("'[]'::jsonb"))
    tv = func.jsonb_array_elements(array).table_valued("value").alias()
    return exists(select(literal(1)).select_from(tv).where(make(PgJson(tv.c.value))))


def primary(container: Val, sub: str | None) -> Val:
    assert isinstance(container, PgJson)
    found = func.jsonb_path_query_first(
        container.ref, literal_column("'$[*] ? (@.primary == true)'::jsonpath")
    )
    first = container.ref.op("->", return_type=JSONB)(literal(0))
    chosen = PgJson(func.coalesce(found, first, type_=JSONB))
    return chosen.field(sub) if sub else chosen


def lower(text: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.lower(text)


def position(text: ColumnElement[Any], needle: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.strpos(text, needle)


def tail(text: ColumnElement[Any], length: int) -> ColumnElement[Any]:
    return func.right(text, length)


def code_point_order(text: ColumnElement[Any]) -> ColumnElement[Any]:
    return text.collate("C")


def number(value: int | float | Decimal) -> ColumnElement[Any]:
    return literal(Decimal(str(value)) if isinstance(value, float) else value, Numeric())
