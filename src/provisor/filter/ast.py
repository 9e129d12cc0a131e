"""The immutable filter AST (RFC 7644 section 3.4.2.2).

The parser produces nodes with textual attribute references; the binder (a visitor) checks them
against the schema registry and returns the same tree with each `Attr` carrying its resolved
`AttrPath`. The SQL compiler and the Python evaluator only ever walk bound trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeAlias

from provisor.schema.model import AttrPath

#: A literal after parsing: JSON string, number, boolean or null. dateTime literals stay strings
#: until binding knows the attribute's type.
Literal: TypeAlias = str | int | float | Decimal | bool | datetime | None

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


@dataclass(frozen=True)
class Attr:
    """An attribute path as written (`urn` optional, `sub` optional), plus its binding."""

    urn: str | None
    name: str
    sub: str | None = None
    path: AttrPath | None = None

    def __str__(self) -> str:
        text = f"{self.name}.{self.sub}" if self.sub else self.name
        return f"{self.urn}:{text}" if self.urn else text


@dataclass(frozen=True)
class Compare:
    attr: Attr
    op: str  # one of COMPARE_OPS, lower-case
    value: Literal


@dataclass(frozen=True)
class Present:
    attr: Attr


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    expr: Filter


@dataclass(frozen=True)
class ValuePath:
    """`emails[type eq "work"]`: true when one element of a multi-valued/complex attribute matches.

    Inside `filter`, attributes are relative to the element (`type`, not `emails.type`).
    `emails[type eq "work"].value eq "x"` is parsed as `emails[type eq "work" and value eq "x"]`.
    """

    attr: Attr
    filter: Filter


Filter: TypeAlias = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    """A PATCH `path` (RFC 7644 section 3.5.2 `PATH = attrPath / valuePath [subAttr]`)."""

    attr: Attr
    filter: Filter | None = None
    sub: str | None = None
