"""Which attribute values are copied into `attribute_index`, and how they are normalised.

The filter SQL compiler and the write path both use these rules, so a value is always looked up
in exactly the form it was stored in.
"""

from __future__ import annotations

from collections.abc import Iterator
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


def index_rows(
    rt: ResourceType, doc: dict[str, Any], unique_attrs: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str, bool]]:
    """Yield `(attr, value_norm, is_unique)` for every indexed value in a stored document.

    `unique_attrs` names the dotted attributes whose values must be unique in this tenant (e.g.
    `userName`, and `displayName` for Groups unless the tenant allows duplicates).
    """
    seen: set[tuple[str, str]] = set()
    for dotted in INDEXED_ATTRIBUTES.get(rt.name, ()):
        name, _, sub = dotted.partition(".")
        attribute = rt.schema.attribute(name)
        if attribute is None and name == "externalId":
            attribute = Attribute(name="externalId", case_exact=True)
        if attribute is None:
            continue
        target = attribute.sub(sub) if sub else attribute
        if target is None:
            continue
        raw = doc.get(attribute.name)
        values: list[Any]
        if raw is None:
            values = []
        elif sub:
            elements = raw if isinstance(raw, list) else [raw]
            values = [el.get(target.name) for el in elements if isinstance(el, dict)]
        else:
            values = raw if isinstance(raw, list) else [raw]
        for value in values:
            if value is None or value == "":
                continue
            norm = normalise(target, value)
            if not is_indexable_value(norm):
                norm = norm[:MAX_INDEXED_LENGTH]
            if (dotted, norm) in seen:
                continue
            seen.add((dotted, norm))
            yield dotted, norm, dotted in unique_attrs
