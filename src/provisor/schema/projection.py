"""Which attributes a response carries: RFC 7644 section 3.9 plus RFC 7643 `returned`.

Design:

* `parse_attribute_list` turns `attributes=`/`excludedAttributes=` text into plain `AttrPath`s,
  once per request. A bare schema URN (e.g. the Enterprise extension's) names every attribute
  of that schema, so it is expanded into one `AttrPath` per attribute: callers only ever deal
  with one type, and "exclude the whole extension" falls out of the normal rules (an extension
  object left empty is dropped). Unknown names are ignored, as IdPs send misspellings and the
  RFC does not say otherwise; value-path filters (`emails[type eq "work"]`) are not supported.
* `project` applies the selection to a full output resource. `returned: always` wins over
  everything, `never` loses to everything, `request` needs naming (naming a parent names its
  sub-attributes too). When both lists are given, `attributes` wins: the RFC allows only one,
  and answering with more than was asked for is the safer failure for an IdP.
* `is_requested` answers the same question for one top-level attribute without a resource, so
  services can skip expensive reads (`members`, `groups`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from provisor.errors import ScimError
from provisor.schema.model import Attribute, AttrPath, ResourceType
from provisor.schema.registry import Registry

__all__ = ["is_requested", "parse_attribute_list", "project"]

_Key = tuple[str | None, str]  # (extension URN or None for core/common, canonical attribute name)


def parse_attribute_list(
    registry: Registry, rt: ResourceType, text: str | None
) -> tuple[AttrPath, ...] | None:
    """Parse a comma-separated attribute list; None when it names nothing known.

    An all-unknown list is treated as absent rather than as "return only `always` attributes":
    a misspelt `attributes=` then costs bandwidth instead of data the client needed.
    """
    if text is None:
        return None
    paths: list[AttrPath] = []
    for item in text.split(","):
        paths.extend(_parse_item(registry, rt, item.strip()))
    return tuple(dict.fromkeys(paths)) or None


def project(
    registry: Registry,
    rt: ResourceType,
    resource: dict[str, Any],
    attributes: Sequence[AttrPath] | None = None,
    excluded: Sequence[AttrPath] | None = None,
) -> dict[str, Any]:
    """A copy of `resource` holding only the attributes the client gets back."""
    selection = _Selection.build(attributes, excluded)
    out: dict[str, Any] = {}
    dropped: set[str] = set()
    for key, value in resource.items():
        if key == "schemas":
            out[key] = value
            continue
        ext = rt.extension(key) if key.lower().startswith("urn:") else None
        if ext is not None:
            projected = _project_extension(selection, ext.schema.id, ext.schema.attributes, value)
            if projected:
                out[key] = projected
            else:
                dropped.add(ext.schema.id.lower())
            continue
        path = registry.resolve_parts(rt, None, key)
        if path is None:
            if selection.mode != "include":
                out[key] = value
            continue
        projected = _project_attribute(selection, None, path.attribute, value)
        if projected is not None:
            out[key] = projected
    if dropped and isinstance(out.get("schemas"), list):
        out["schemas"] = [urn for urn in out["schemas"] if str(urn).lower() not in dropped]
    return out


def is_requested(
    registry: Registry,
    rt: ResourceType,
    name: str,
    attributes: Sequence[AttrPath] | None,
    excluded: Sequence[AttrPath] | None,
) -> bool:
    """Whether top-level attribute `name` (maybe URN-qualified) can appear in the output."""
    try:
        path = registry.resolve(rt, name)
    except ScimError:
        return False
    if path is None:
        return False
    selection = _Selection.build(attributes, excluded)
    return selection.decide(path.urn, path.attribute) is not _Decision.DROP


# ---- parsing ----------------------------------------------------------------------------------


def _parse_item(registry: Registry, rt: ResourceType, item: str) -> list[AttrPath]:
    if not item:
        return []
    try:
        urn, rest = registry.split_urn(rt, item)
        if not rest:
            return _whole_schema(rt, urn)
        path = registry.resolve(rt, item)
    except ScimError:
        return []
    return [path] if path is not None else []


def _whole_schema(rt: ResourceType, urn: str | None) -> list[AttrPath]:
    """A bare schema URN names every attribute of that schema."""
    ext = rt.extension(urn) if urn else None
    schema = ext.schema if ext else rt.schema
    return [AttrPath(urn, attribute) for attribute in schema.attributes]


# ---- the selection ----------------------------------------------------------------------------


class _Decision(Enum):
    """How much of an attribute to return: all of it, some sub-attributes, or nothing."""

    KEEP = "keep"
    SUBS = "subs"
    DROP = "drop"


@dataclass(frozen=True)
class _Selection:
    """An `attributes` or `excludedAttributes` list indexed for lookups by attribute."""

    mode: str  # "include", "exclude" or "all"
    whole: frozenset[_Key] = frozenset()
    subs: dict[_Key, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, attributes: Sequence[AttrPath] | None, excluded: Sequence[AttrPath] | None) -> _Selection:
        if attributes:
            mode, paths = "include", attributes
        elif excluded:
            mode, paths = "exclude", excluded
        else:
            return cls("all")
        whole = {(p.urn, p.attribute.name) for p in paths if p.sub_attribute is None}
        subs: dict[_Key, set[str]] = {}
        for p in paths:
            if p.sub_attribute is not None:
                subs.setdefault((p.urn, p.attribute.name), set()).add(p.sub_attribute.name)
        return cls(mode, frozenset(whole), {k: frozenset(v) for k, v in subs.items()})

    def decide(self, urn: str | None, attribute: Attribute) -> _Decision:
        """The fate of a top-level attribute under this selection."""
        if attribute.returned == "never":
            return _Decision.DROP
        if attribute.returned == "always":
            return _Decision.KEEP
        key = (urn, attribute.name)
        if self.mode == "include":
            if key in self.whole:
                return _Decision.KEEP
            return _Decision.SUBS if key in self.subs else _Decision.DROP
        if attribute.returned == "request":
            return _Decision.DROP
        if self.mode == "exclude" and key in self.whole:
            return _Decision.DROP
        return _Decision.SUBS if self.mode == "exclude" and key in self.subs else _Decision.KEEP

    def keeps_sub(self, key: _Key, decision: _Decision, sub: Attribute) -> bool:
        """Whether sub-attribute `sub` survives, given its parent's decision."""
        if sub.returned == "never":
            return False
        if sub.returned == "always":
            return True
        named = sub.name in self.subs.get(key, frozenset())
        if decision == _Decision.KEEP:
            # The parent was named as a whole (or not filtered): `request` subs come with it
            # only when the parent itself was requested by name.
            return sub.returned != "request" or (self.mode == "include" and key in self.whole)
        if self.mode == "include":
            return named
        return not named and sub.returned != "request"


# ---- applying it ------------------------------------------------------------------------------


def _project_extension(
    selection: _Selection, urn: str, attributes: tuple[Attribute, ...], value: Any
) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    by_lower = {attribute.name.lower(): attribute for attribute in attributes}
    out: dict[str, Any] = {}
    for name, inner in value.items():
        attribute = by_lower.get(name.lower())
        if attribute is None:
            continue
        projected = _project_attribute(selection, urn, attribute, inner)
        if projected is not None:
            out[name] = projected
    return out


def _project_attribute(selection: _Selection, urn: str | None, attribute: Attribute, value: Any) -> Any:
    """The projected value of one top-level attribute, or None when it is not returned."""
    decision = selection.decide(urn, attribute)
    if decision == _Decision.DROP:
        return None
    if not attribute.sub_attributes:
        return value
    key = (urn, attribute.name)
    if isinstance(value, list):
        elements = [_project_element(selection, key, decision, attribute, item) for item in value]
        kept = [element for element in elements if element]
        return kept or None
    return _project_element(selection, key, decision, attribute, value) or None


def _project_element(
    selection: _Selection, key: _Key, decision: _Decision, attribute: Attribute, element: Any
) -> Any:
    if not isinstance(element, dict):
        return element
    out: dict[str, Any] = {}
    for name, value in element.items():
        sub = attribute.sub(name)
        if sub is None:
            if decision == _Decision.KEEP:
                out[name] = value
        elif selection.keeps_sub(key, decision, sub):
            out[name] = value
    return out
