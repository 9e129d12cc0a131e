"""Which attribute values are copied into `attribute_index`, and how they are normalised.

The filter SQL compiler and the write path both use these rules, so a value is always looked up
in exactly the form it was stored in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from provisor.schema.model import Attribute, AttrPath, ResourceType

#: Dotted attribute names (core schema) indexed per resource type.
INDEXED_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "User": ("userName", "externalId", "emails.value", "displayName"),
    "Group": ("displayName", "externalId"),
}

#: Longest value kept in the index; longer values are truncated there (lookups of such values then
#: fall back to the document, see `is_indexable_value`).
MAX_INDEXED_LENGTH = 512


def normalise(attribute: Attribute, value: Any) -> str:
    """The index form of a value: text, lower-cased unless the attribute is caseExact."""
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return text if attribute.case_exact else text.lower()


def is_indexable_value(value: str) -> bool:
    return len(value) <= MAX_INDEXED_LENGTH


def is_indexed(rt: ResourceType, path: AttrPath) -> bool:
    return path.urn is None and path.dotted in INDEXED_ATTRIBUTES.get(rt.name, ())


#: `externalId` is a common attribute (RFC 7643 section 3.1), in no schema's attribute list.
_EXTERNAL_ID = Attribute(name="externalId", case_exact=True)


@dataclass(frozen=True)
class _Indexed:
    """One indexed attribute of a resource type, resolved against its schema once."""

    dotted: str
    name: str  # the top-level attribute, as documents spell it
    target: Attribute  # the attribute whose values are indexed (the sub-attribute, if dotted)
    sub: bool


#: Resolved indexed attributes per resource type object (by identity: a type is immutable, and a
#: reloaded registry makes new ones). Every write indexes its document, some twice.
_PLANS: dict[int, tuple[ResourceType, tuple[_Indexed, ...]]] = {}


def _plan(rt: ResourceType) -> tuple[_Indexed, ...]:
    found = _PLANS.get(id(rt))
    if found is not None and found[0] is rt:
        return found[1]
    plan: list[_Indexed] = []
    for dotted in INDEXED_ATTRIBUTES.get(rt.name, ()):
        name, _, sub = dotted.partition(".")
        attribute = rt.schema.attribute(name)
        if attribute is None and name == "externalId":
            attribute = _EXTERNAL_ID
        target = attribute.sub(sub) if attribute is not None and sub else attribute
        if attribute is not None and target is not None:
            plan.append(_Indexed(dotted, attribute.name, target, bool(sub)))
    if len(_PLANS) > 256:  # registries reloaded many times: forget the old types
        _PLANS.clear()
    _PLANS[id(rt)] = (rt, tuple(plan))
    return tuple(plan)


def index_rows(
    rt: ResourceType, doc: dict[str, Any], unique_attrs: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str, bool]]:
    """Yield `(attr, value_norm, is_unique)` for every indexed value in a stored document.

    `unique_attrs` names the dotted attributes whose values must be unique in this tenant (e.g.
    `userName`, and `displayName` for Groups unless the tenant allows duplicates).
    """
    seen: set[tuple[str, str]] = set()
    for indexed in _plan(rt):
        raw = doc.get(indexed.name)
        values: list[Any]
        if raw is None:
            continue
        if indexed.sub:
            elements = raw if isinstance(raw, list) else [raw]
            values = [el.get(indexed.target.name) for el in elements if isinstance(el, dict)]
        else:
            values = raw if isinstance(raw, list) else [raw]
        dotted = indexed.dotted
        for value in values:
            if value is None or value == "":
                continue
            norm = normalise(indexed.target, value)
            if not is_indexable_value(norm):
                norm = norm[:MAX_INDEXED_LENGTH]
            if (dotted, norm) in seen:
                continue
            seen.add((dotted, norm))
            yield dotted, norm, dotted in unique_attrs
