"""The `attributes` / `excludedAttributes` of one request, parsed once and applied to each
resource it answers with. Its own module so that every service (and the steps a resource
service hands a write to) can take one without importing the resource service."""

from __future__ import annotations

from typing import Any

from provisor.schema.model import ResourceType
from provisor.schema.projection import is_requested, parse_attribute_list, project
from provisor.schema.registry import Registry


class Projection:
    """The parsed `attributes` / `excludedAttributes` of one request."""

    def __init__(self, registry: Registry, rt: ResourceType, attributes: str | None, excluded: str | None):
        self.registry = registry
        self.rt = rt
        self.attributes = parse_attribute_list(registry, rt, attributes)
        self.excluded = parse_attribute_list(registry, rt, excluded)

    def wants(self, name: str) -> bool:
        return is_requested(self.registry, self.rt, name, self.attributes, self.excluded)

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        if self.attributes is None and self.excluded is None:
            return project(self.registry, self.rt, resource)
        return project(self.registry, self.rt, resource, self.attributes, self.excluded)
