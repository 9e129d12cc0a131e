"""The schema-checking visitor: resolves attribute names and coerces literals to attribute types.

Binding happens once, so both back ends (SQL, Python) see canonical attributes and typed
literals and can never disagree about what a filter means. It also desugars `eq null` / `ne null`
to (not) `pr`, so the back ends have one notion of absence.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from provisor.errors import ScimError, invalid_filter, invalid_path
from provisor.filter.ast import And, Attr, Compare, Filter, Literal, Not, Or, PatchPath, Present, ValuePath
from provisor.filter.parser import parse_path
from provisor.schema.model import (
    BINARY,
    BOOLEAN,
    COMPLEX,
    DATETIME,
    DECIMAL,
    INTEGER,
    REFERENCE,
    STRING_LIKE,
    Attribute,
    AttrPath,
    ResourceType,
)
from provisor.schema.registry import Registry

_ORDER_OPS = frozenset({"gt", "ge", "lt", "le"})
_STRING_OPS = frozenset({"co", "sw", "ew"})
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)

Error = Callable[[str], ScimError]

#: `schemas` is no schema attribute, but RFC 7644 filters on it (`schemas eq "urn:...:enterprise:2.0:User"`):
#: its values are the core schema plus every extension the resource carries.
SCHEMAS_ATTRIBUTE = Attribute(name="schemas", type=REFERENCE, multi_valued=True, mutability="readOnly")


def normalise_datetime(text: str) -> str | None:
    """Any ISO 8601 / xsd:dateTime instant as the stored fixed-width UTC form, or None if invalid."""
    match = _DATETIME.fullmatch(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, frac, offset = match.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        tz = UTC
        if offset and offset not in ("Z", "z"):
            digits = offset[1:].replace(":", "")
            delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            tz = timezone(-delta if offset[0] == "-" else delta)
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tz
        )
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (ValueError, OverflowError):
        return None


def _coerce(path: AttrPath, value: Literal, error: Error) -> Literal:
    target = path.target
    kind = target.type
    bad = error(f"value {value!r} is not a valid {kind} for attribute {path}")
    if kind in STRING_LIKE:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int | Decimal | float):
            return str(value)
        return value
    if kind == BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad
    if kind in (INTEGER, DECIMAL):
        if isinstance(value, bool):
            raise bad
        try:
            number = Decimal(value) if isinstance(value, str | float) else value
        except (InvalidOperation, ValueError):
            raise bad from None
        if not isinstance(number, int | Decimal) or (isinstance(number, Decimal) and not number.is_finite()):
            raise bad
        if isinstance(number, Decimal) and number == number.to_integral_value() and kind == INTEGER:
            return int(number)
        return number
    if kind == DATETIME:
        text = value if isinstance(value, str) else None
        normalised = normalise_datetime(text) if text is not None else None
        if normalised is None:
            raise bad
        return normalised
    raise bad


class _UnknownAttribute(Exception):
    """Raised instead of an error when unknown attributes count as absent (root `/.search`)."""


class _Binder:
    def __init__(
        self,
        registry: Registry,
        rt: ResourceType,
        error: Error,
        *,
        unknown_absent: bool = False,
        purpose: str = "a filter",
    ):
        self.registry = registry
        self.rt = rt
        self.error = error
        self.unknown_absent = unknown_absent
        #: What the names being bound are part of, for error messages ("a filter", "a PATCH path").
        self.purpose = purpose

    def constant(self, truth: bool) -> Filter:
        """A filter that is always `truth`, built from `id pr` (every resource has an id)."""
        id_path = self.registry.resolve_parts(self.rt, None, "id")
        assert id_path is not None
        always = Present(Attr(None, "id", None, id_path))
        return always if truth else Not(always)

    def resolve(self, attr: Attr, within: AttrPath | None) -> AttrPath:
        if within is not None:
            sub = within.attribute.sub(attr.name) if attr.urn is None and attr.sub is None else None
            if sub is None:
                raise self.error(f"unknown attribute {attr} in value filter of {within}")
            return AttrPath(within.urn, within.attribute, sub)
        if attr.urn is None and attr.sub is None and attr.name.lower() == "schemas":
            return AttrPath(None, SCHEMAS_ATTRIBUTE)
        try:
            path = self.registry.resolve_parts(self.rt, attr.urn, attr.name, attr.sub)
        except ScimError:
            path = None
        if path is None:
            if self.unknown_absent:
                raise _UnknownAttribute(str(attr))
            raise self.error(f"unknown attribute {attr}")
        if path.target.returned == "never":
            raise self.error(f"attribute {path} is never returned and cannot be used in {self.purpose}")
        return path

    def bind(self, node: Filter, within: AttrPath | None) -> Filter:
        if isinstance(node, And):
            return And(self.bind(node.left, within), self.bind(node.right, within))
        if isinstance(node, Or):
            return Or(self.bind(node.left, within), self.bind(node.right, within))
        if isinstance(node, Not):
            return Not(self.bind(node.expr, within))
        assert isinstance(node, Present | ValuePath | Compare)
        try:
            return self.leaf(node, within)
        except _UnknownAttribute:
            # An attribute this resource type does not have is absent: only `ne` is true of it.
            return self.constant(isinstance(node, Compare) and node.op == "ne" and node.value is not None)

    def leaf(self, node: Present | ValuePath | Compare, within: AttrPath | None) -> Filter:
        if isinstance(node, Present):
            return Present(_with_path(node.attr, self.resolve(node.attr, within)))
        if isinstance(node, ValuePath):
            return self.value_path(node, within)
        return self.compare(node, within)

    def value_path(self, node: ValuePath, within: AttrPath | None) -> Filter:
        if within is not None:
            raise self.error(f"nested value filter on {node.attr} is not allowed")
        path = self.resolve(node.attr, None)
        if path.sub_attribute is not None or path.attribute.type != COMPLEX:
            raise self.error(f"value filter needs a complex attribute, got {path}")
        return ValuePath(_with_path(node.attr, path), self.bind(node.filter, path))

    def compare(self, node: Compare, within: AttrPath | None) -> Filter:
        path = self.resolve(node.attr, within)
        if node.value is None:
            if node.op not in ("eq", "ne"):
                raise self.error(f"null can only be compared with eq or ne ({node.attr})")
            present = Present(_with_path(node.attr, path))
            return Not(present) if node.op == "eq" else present
        if path.target.type == COMPLEX:
            value_sub = path.attribute.sub("value") if path.sub_attribute is None else None
            if value_sub is None:
                raise self.error(f"complex attribute {path} cannot be compared with a value")
            path = AttrPath(path.urn, path.attribute, value_sub)
        kind = path.target.type
        if node.op in _ORDER_OPS and kind in (BOOLEAN, BINARY, COMPLEX):
            raise self.error(f"operator {node.op!r} is not allowed on {kind} attribute {path}")
        if node.op in _STRING_OPS and kind not in STRING_LIKE:
            raise self.error(f"operator {node.op!r} needs a string attribute, {path} is {kind}")
        return Compare(_with_path(node.attr, path), node.op, _coerce(path, node.value, self.error))


def _with_path(attr: Attr, path: AttrPath) -> Attr:
    return Attr(attr.urn, attr.name, attr.sub, path)


def bind(
    node: Filter,
    registry: Registry,
    rt: ResourceType,
    *,
    within: AttrPath | None = None,
    unknown_absent: bool = False,
) -> Filter:
    """Resolve and type-check a parsed filter; unknown attributes and type errors are invalidFilter.

    With `within`, attribute names are sub-attributes of that (complex) attribute, as inside
    `emails[...]`; the result is then evaluated per element with `matches_element`. With
    `unknown_absent` (a search across resource types, RFC 7644 section 3.4.3), an attribute the
    resource type does not define is treated as absent instead of being an error.
    """
    return _Binder(registry, rt, invalid_filter, unknown_absent=unknown_absent).bind(node, within)


#: Bound PATCH paths per registry (immutable once built), keyed by resource type name and path
#: text. A PATCH resolves each of its paths several times (the normalisers, then the engine), and
#: IdPs send the same few paths over and over. The key is the text, not the parsed AST: in an AST
#: `eq 1` and `eq true` compare equal (Python's 1 == True) but bind differently. Errors are not
#: cached: a bad path is refused anew each time.
_BOUND_PATHS: weakref.WeakKeyDictionary[Registry, dict[tuple[str, str], PatchPath]] = (
    weakref.WeakKeyDictionary()
)
_BOUND_PATHS_MAX = 4096
_CACHED_TEXT_LENGTH = 200


def resolve_patch_path(text: str, registry: Registry, rt: ResourceType) -> PatchPath:
    """`bind_path(parse_path(text), ...)`, remembered for short paths of the registry's own types.

    Every error names the PATCH path it is about (`invalid PATCH path "x": ...`): the parser and
    binder are shared with filters, and a client must not be told about a filter it never sent.
    """
    if len(text) > _CACHED_TEXT_LENGTH or registry.resource_types.get(rt.name) is not rt:
        return _bound_path(text, registry, rt)
    cache = _BOUND_PATHS.setdefault(registry, {})
    key = (rt.name, text)
    bound = cache.get(key)
    if bound is None:
        bound = _bound_path(text, registry, rt)
        if len(cache) >= _BOUND_PATHS_MAX:
            cache.clear()
        cache[key] = bound
    return bound


def _bound_path(text: str, registry: Registry, rt: ResourceType) -> PatchPath:
    try:
        return bind_path(parse_path(text), registry, rt)
    except ScimError as error:
        shown = text if len(text) <= _CACHED_TEXT_LENGTH else text[:_CACHED_TEXT_LENGTH] + "..."
        raise invalid_path(f'invalid PATCH path "{shown}": {error.detail}') from None


def bind_path(path: PatchPath, registry: Registry, rt: ResourceType) -> PatchPath:
    """Resolve a PATCH path; errors are invalidPath."""
    binder = _Binder(registry, rt, invalid_path, purpose="a PATCH path")
    resolved = binder.resolve(path.attr, None)
    attr = _with_path(path.attr, resolved)
    if path.filter is None:
        if path.sub is not None:
            raise invalid_path(f"sub-attribute without a value filter in path {path.attr}")
        return PatchPath(attr)
    if resolved.sub_attribute is not None or resolved.attribute.type != COMPLEX:
        raise invalid_path(f"value filter needs a complex attribute, got {resolved}")
    inner = binder.bind(path.filter, resolved)
    sub = None
    if path.sub is not None:
        found = resolved.attribute.sub(path.sub)
        if found is None:
            raise invalid_path(f"unknown sub-attribute {path.sub!r} of {resolved}")
        sub = found.name
    return PatchPath(attr, inner, sub)
