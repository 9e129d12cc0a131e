"""The `attributes` / `excludedAttributes` of one request, parsed once and applied to each
resource it answers with. Its own module so that every service (and the steps a resource
service hands a write to) can take one without importing the resource service."""

from __future__ import annotations

from typing import Any

from provisor.schema.model import ResourceType
from provisor.schema.projection import is_requested, parse_attribute_list, project
from provisor.schema.registry import Registry

#: The most `wants` answers a projection keeps (names come from the code, not from requests).
_WANTS_KEPT = 64


class Projection:
    """The parsed `attributes` / `excludedAttributes` of one request."""

    def __init__(self, registry: Registry, rt: ResourceType, attributes: str | None, excluded: str | None):
        self.registry = registry
        self.rt = rt
        self.attributes = parse_attribute_list(registry, rt, attributes)
        self.excluded = parse_attribute_list(registry, rt, excluded)
        #: `wants` answers, by name: a write asks about `groups` two or three times, and the
        #: services' default projection (`ResourceService.default_projection`) lives for the process.
        self._wants: dict[str, bool] = {}

    def wants(self, name: str) -> bool:
        found = self._wants.get(name)
        if found is None:
            found = is_requested(self.registry, self.rt, name, self.attributes, self.excluded)
            if len(self._wants) < _WANTS_KEPT:
                self._wants[name] = found
        return found

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        if self.attributes is None and self.excluded is None:
            return project(self.registry, self.rt, resource)
        return project(self.registry, self.rt, resource, self.attributes, self.excluded)
