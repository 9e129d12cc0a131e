"""Stored rows to SCIM resources: `schemas`, `id`, `meta` and derived attributes are added here."""

from __future__ import annotations

from typing import Any

from provisor.schema.model import ResourceType
from provisor.storage.resources import StoredResource


def etag(version: int) -> str:
    return f'W/"{version}"'


def location(base_url: str, rt: ResourceType, resource_id: str) -> str:
    return f"{base_url}{rt.endpoint}/{resource_id}"


def render(
    rt: ResourceType, stored: StoredResource, base_url: str, derived: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The full output resource (before `attributes`/`excludedAttributes` projection)."""
    doc = stored.doc
    schemas = [rt.schema.id, *(ext.schema.id for ext in rt.extensions if ext.schema.id in doc)]
    out: dict[str, Any] = {"schemas": schemas, "id": stored.id}
    if "externalId" in doc:
        out["externalId"] = doc["externalId"]
    for key, value in doc.items():
        if key != "externalId":
            out[key] = value
    if derived:
        out.update(derived)
    out["meta"] = {
        "resourceType": rt.name,
        "created": stored.created,
        "lastModified": stored.last_modified,
        "location": location(base_url, rt, stored.id),
        "version": etag(stored.version),
    }
    return out
