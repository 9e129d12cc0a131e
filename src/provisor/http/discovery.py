"""RFC 7644 section 4 discovery documents, generated from the registry and the settings.

Only what works is advertised: a feature flips to supported in the same change that makes it work.
"""

from __future__ import annotations

from typing import Any

from provisor.config import Settings
from provisor.protocol.query import list_response
from provisor.schema.model import ResourceType, Schema
from provisor.schema.registry import RESOURCE_TYPE_URN, SPC_URN, Registry

DOCS_URI = "https://github.com/provisor/provisor/tree/main/docs"


def service_provider_config(settings: Settings, base_url: str) -> dict[str, Any]:
    return {
        "schemas": [SPC_URN],
        "documentationUri": DOCS_URI,
        "patch": {"supported": True},
        "bulk": {
            "supported": True,
            "maxOperations": settings.bulk_max_operations,
            "maxPayloadSize": settings.bulk_max_payload_bytes,
        },
        "filter": {"supported": True, "maxResults": settings.max_page_size},
        "changePassword": {"supported": False},
        "sort": {"supported": True},
        "etag": {"supported": True},
        # RFC 9865 section 4: both pagination methods are available on every list endpoint.
        # `cursorTimeout` is left out: it is a positive number of seconds after which a cursor
        # may expire, and Provisor's cursors never do (a signed position, no server-side state:
        # service/cursor.py). The `0` advertised before is invalid, and clients reject the document.
        "pagination": {
            "cursor": True,
            "index": True,
            "defaultPaginationMethod": "index",
            "defaultPageSize": settings.default_page_size,
            "maxPageSize": settings.max_page_size,
        },
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with a bearer token minted by `provisor token create`.",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url}/ServiceProviderConfig",
        },
    }


def resource_type_doc(rt: ResourceType, base_url: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemas": [RESOURCE_TYPE_URN],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "schemaExtensions": [{"schema": ext.schema.id, "required": ext.required} for ext in rt.extensions],
        "meta": {"resourceType": "ResourceType", "location": f"{base_url}/ResourceTypes/{rt.name}"},
    }
    return doc


def schema_doc(schema: Schema, base_url: str) -> dict[str, Any]:
    doc = schema.to_scim()
    doc["meta"] = {"resourceType": "Schema", "location": f"{base_url}/Schemas/{schema.id}"}
    return doc


def resource_types(registry: Registry, base_url: str) -> dict[str, Any]:
    docs = [resource_type_doc(rt, base_url) for rt in registry.resource_types.values()]
    return list_response(docs, len(docs), 1)


def schemas(registry: Registry, base_url: str) -> dict[str, Any]:
    docs = [schema_doc(s, base_url) for s in registry.schemas.values()]
    return list_response(docs, len(docs), 1)
