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
* Nearly every response is projected with no list at all. That case only ever drops `never` and
  `request` attributes, so its per-attribute decisions are worked out once per resource type
  (`_DefaultPlan`) instead of per attribute per response; it gives the same output as the general
  walk (tests/unit/test_projection_default_plan.py compares the two).
"""

from __future__ import annotations

import weakref
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
    if selection is _ALL:
        return _default_plan(registry, rt).apply(resource)
    return _project(registry, rt, resource, selection)


def _project(
    registry: Registry, rt: ResourceType, resource: dict[str, Any], selection: _Selection
) -> dict[str, Any]:
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
            return _ALL
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


#: The selection without `attributes` or `excludedAttributes`: one value, so it is recognised by identity.
_ALL = _Selection("all")


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


# ---- the default plan (no attribute list) -----------------------------------------------------

#: What happens to a top-level key under the default selection.
_KEEP = 0  # `schemas`, and keys of no schema (the general walk keeps those too)
_DROP = 1  # returned never / request
_SIMPLE = 2  # kept unless null
_COMPLEX = 3  # kept element by element, minus the never / request sub-attributes
_EXTENSION = 4  # an extension's object, projected attribute by attribute

_Rule = tuple[int, Any]
_PLANS: weakref.WeakKeyDictionary[Registry, dict[str, _DefaultPlan]] = weakref.WeakKeyDictionary()
#: Keys remembered per resource type; a document with stranger keys is still projected, uncached.
_PLAN_KEYS_MAX = 512


def _default_plan(registry: Registry, rt: ResourceType) -> _DefaultPlan:
    plans = _PLANS.setdefault(registry, {})
    plan = plans.get(rt.name)
    if plan is None or plan.rt is not rt:
        plan = plans[rt.name] = _DefaultPlan(registry, rt)
    return plan


def _attribute_rule(attribute: Attribute) -> _Rule:
    if _ALL.decide(None, attribute) is _Decision.DROP:
        return (_DROP, None)
    if not attribute.sub_attributes:
        return (_SIMPLE, None)
    key = (None, attribute.name)
    hidden = frozenset(
        s.name.lower() for s in attribute.sub_attributes if not _ALL.keeps_sub(key, _Decision.KEEP, s)
    )
    return (_COMPLEX, hidden)


class _DefaultPlan:
    """`_project` under the default selection, with each key's fate decided once."""

    def __init__(self, registry: Registry, rt: ResourceType) -> None:
        self.registry = registry
        self.rt = rt
        self._rules: dict[str, _Rule] = {}

    def _rule(self, key: str) -> _Rule:
        rule = self._rules.get(key)
        if rule is not None:
            return rule
        rule = self._decide(key)
        if len(self._rules) < _PLAN_KEYS_MAX:
            self._rules[key] = rule
        return rule

    def _decide(self, key: str) -> _Rule:
        if key == "schemas":
            return (_KEEP, None)
        ext = self.rt.extension(key) if key.lower().startswith("urn:") else None
        if ext is not None:
            rules = {a.name.lower(): _attribute_rule(a) for a in ext.schema.attributes}
            return (_EXTENSION, (ext.schema.id.lower(), rules))
        path = self.registry.resolve_parts(self.rt, None, key)
        return (_KEEP, None) if path is None else _attribute_rule(path.attribute)

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        dropped: list[str] = []
        for key, value in resource.items():
            kind, detail = self._rule(key)
            if kind == _KEEP:
                out[key] = value
            elif kind == _EXTENSION:
                urn, rules = detail
                projected = _extension_by_plan(rules, value)
                if projected:
                    out[key] = projected
                else:
                    dropped.append(urn)
            elif kind != _DROP:
                projected = _by_rule(kind, detail, value)
                if projected is not None:
                    out[key] = projected
        if dropped and isinstance(out.get("schemas"), list):
            out["schemas"] = [urn for urn in out["schemas"] if str(urn).lower() not in dropped]
        return out


def _extension_by_plan(rules: dict[str, _Rule], value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    out: dict[str, Any] = {}
    for name, inner in value.items():
        rule = rules.get(name.lower())
        if rule is None or rule[0] == _DROP:
            continue
        projected = _by_rule(rule[0], rule[1], inner)
        if projected is not None:
            out[name] = projected
    return out


def _by_rule(kind: int, hidden: frozenset[str] | None, value: Any) -> Any:
    if kind == _SIMPLE:
        return value
    assert hidden is not None
    if isinstance(value, list):
        kept = [e for e in (_element_by_plan(hidden, item) for item in value) if e]
        return kept or None
    return _element_by_plan(hidden, value) or None


def _element_by_plan(hidden: frozenset[str], element: Any) -> Any:
    if not isinstance(element, dict):
        return element
    if not hidden:
        return dict(element)
    return {name: value for name, value in element.items() if name.lower() not in hidden}
