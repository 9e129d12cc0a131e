"""Write-only attributes (`returned: never`, e.g. the User's `password`): accepted, never stored.

RFC 7643 section 4.1 makes `password` writeOnly and never returned. Provisor keeps no password:
the stored document drops such attributes (schema/coerce.py), so a request that sets one changes
nothing stored. The values are still worth handing to the host application once the write has
committed (the `on_password` hook, events/hooks.py), so this module finds them in POST/PUT bodies
and PATCH values without storing them anywhere.
"""

from __future__ import annotations

from typing import Any

from provisor.errors import ScimError
from provisor.schema.coerce import coerce_value
from provisor.schema.model import Attribute, ResourceType
from provisor.schema.registry import Registry


class WriteOnly:
    """The write-only attributes of one resource type, and where requests name them."""

    def __init__(self, registry: Registry, rt: ResourceType) -> None:
        self.registry = registry
        self.rt = rt
        schemas = (rt.schema, *(ext.schema for ext in rt.extensions))
        #: Lower-case names of the top-level write-only attributes: a cheap first test per key.
        self.names = frozenset(
            attribute.name.lower()
            for schema in schemas
            for attribute in schema.attributes
            if attribute.returned == "never"
        )

    def resolve(self, text: str) -> tuple[str, Attribute] | None:
        """(canonical path, attribute) when `text` names a write-only attribute, else None."""
        if not self.names or text.lower().rsplit(":", 1)[-1] not in self.names:
            return None
        try:
            path = self.registry.resolve(self.rt, text)
        except ScimError:
            return None
        if path is None or path.sub_attribute is not None or path.attribute.returned != "never":
            return None
        return str(path), path.attribute

    def section(self, text: str) -> str | None:
        """The prefix for the keys inside `text` when it names one of the type's schemas."""
        if not text.lower().startswith("urn:"):
            return None
        for urn in self.rt.schema_ids:
            if urn.lower() == text.lower():
                return "" if urn == self.rt.schema.id else f"{urn}:"
        return None

    def in_body(self, body: Any) -> dict[str, str]:
        """The write-only string values of a POST/PUT body, keyed by canonical path.

        Only strings are taken: any other value is dropped by coercion as it always was, so a
        body that worked before still works and a hook never sees a non-string.
        """
        found: dict[str, str] = {}
        if not self.names or not isinstance(body, dict):
            return found
        for key, value in body.items():
            if not isinstance(key, str):
                continue
            prefix = self.section(key)
            items = value.items() if prefix is not None and isinstance(value, dict) else ((key, value),)
            for name, inner in items:
                resolved = self.resolve(f"{prefix or ''}{name}" if prefix is not None else name)
                if resolved is not None and isinstance(inner, str) and inner:
                    found[resolved[0]] = inner
        return found

    def split_object(self, value: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        """A path-less PATCH value without its write-only keys, and those keys' values.

        A value is coerced to its attribute's type (a non-string password is 400 invalidValue,
        as it would be for any string attribute); None means the attribute is removed.
        """
        kept: dict[str, Any] = {}
        found: dict[str, Any] = {}
        for key, inner in value.items():
            inner_prefix = self.section(key) if isinstance(key, str) and not prefix else None
            if inner_prefix is not None and isinstance(inner, dict):
                rest, more = self.split_object(inner, inner_prefix)
                found.update(more)
                if rest or not more:
                    kept[key] = rest
                continue
            resolved = self.resolve(f"{prefix}{key}") if isinstance(key, str) else None
            if resolved is None:
                kept[key] = inner
            else:
                found[resolved[0]] = self.value(resolved, inner)
        return kept, found

    @staticmethod
    def value(resolved: tuple[str, Attribute], raw: Any) -> Any:
        """The value a PATCH sets for a write-only attribute (None: removed or null)."""
        path, attribute = resolved
        return coerce_value(attribute, raw, path)


__all__ = ["WriteOnly"]
