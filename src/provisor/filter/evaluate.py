"""Evaluate a bound filter in Python, on output-form resources or on one multi-valued element.

This back end defines the semantics; the SQL compiler is tested against it differentially.
Rules: a multi-valued attribute matches when any of its values does; `ne` is true when the
attribute has no value or when some value differs (so `ne` of a missing attribute is true, as
"not identical" suggests in RFC 7644 3.4.2.2); `not` is plain logical negation; values of the
wrong type never compare equal or ordered.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from provisor.filter.ast import And, Compare, Filter, Literal, Not, Or, Present, ValuePath
from provisor.schema.model import DATETIME, AttrPath


def _get(container: Any, key: str) -> Any:
    if not isinstance(container, dict):
        return None
    if key in container:
        return container[key]
    lowered = key.lower()
    for k, v in container.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return None


def _flatten(value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if item is not None]


def _values(path: AttrPath, resource: dict[str, Any], element: bool) -> list[Any]:
    """All values the path designates (multi-valued flattened, nulls dropped)."""
    if element:
        sub = path.sub_attribute
        return _flatten(_get(resource, sub.name)) if sub else _flatten(resource)
    container: Any = _get(resource, path.urn) if path.urn else resource
    raw = _get(container, path.attribute.name)
    if path.sub_attribute is None:
        return _flatten(raw)
    out: list[Any] = []
    for item in _flatten(raw):
        out.extend(_flatten(_get(item, path.sub_attribute.name)))
    return out


def _non_empty(value: Any) -> bool:
    return value not in ("", [], {}) and value is not None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def compare_value(op: str, value: Any, literal: Literal, case_exact: bool) -> bool:
    """One stored value against a bound literal (`ne` is handled by the caller as not-`eq`)."""
    if isinstance(literal, bool):
        return op == "eq" and isinstance(value, bool) and value == literal
    if isinstance(literal, int | Decimal | float):
        left, right = _number(value), _number(literal)
        if left is None or right is None:
            return False
        outcome: bool = {
            "eq": left == right,
            "gt": left > right,
            "ge": left >= right,
            "lt": left < right,
            "le": left <= right,
        }.get(op, False)
        return outcome
    if not isinstance(literal, str) or not isinstance(value, str):
        return False
    text, lit = (value, literal) if case_exact else (value.lower(), literal.lower())
    if op == "eq":
        return text == lit
    if op == "co":
        return lit in text
    if op == "sw":
        return text.startswith(lit)
    if op == "ew":
        return text.endswith(lit)
    ordered: bool = {"gt": text > lit, "ge": text >= lit, "lt": text < lit, "le": text <= lit}.get(op, False)
    return ordered


def _path(node: Compare | Present | ValuePath) -> AttrPath:
    if node.attr.path is None:
        raise ValueError(f"filter is not bound: {node.attr}")
    return node.attr.path


def _eval(node: Filter, resource: dict[str, Any], element: bool) -> bool:
    if isinstance(node, And):
        return _eval(node.left, resource, element) and _eval(node.right, resource, element)
    if isinstance(node, Or):
        return _eval(node.left, resource, element) or _eval(node.right, resource, element)
    if isinstance(node, Not):
        return not _eval(node.expr, resource, element)
    if isinstance(node, Present):
        return any(_non_empty(v) for v in _values(_path(node), resource, element))
    if isinstance(node, ValuePath):
        path = _path(node)
        container: Any = _get(resource, path.urn) if path.urn else resource
        items = _flatten(_get(container, path.attribute.name))
        return any(isinstance(item, dict) and _eval(node.filter, item, True) for item in items)
    path = _path(node)
    values = _values(path, resource, element)
    exact = path.target.case_exact or path.target.type == DATETIME  # fixed-width UTC strings
    if node.op == "ne":
        return not values or any(not compare_value("eq", v, node.value, exact) for v in values)
    return any(compare_value(node.op, v, node.value, exact) for v in values)


def matches(node: Filter, resource: dict[str, Any]) -> bool:
    """Whether an output-form resource (top-level id/meta, extension URN keys) matches."""
    return _eval(node, resource, False)


def matches_element(node: Filter, element: dict[str, Any]) -> bool:
    """Whether one element of a multi-valued attribute matches a value filter bound `within` it."""
    return _eval(node, element, True)
