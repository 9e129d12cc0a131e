"""An OpenAPI 3.1 description of the SCIM API, served without auth at `/scim/v2/openapi.json`.

Resource schemas are generated from the schema registry (so custom extensions appear); the paths
and the protocol messages (ListResponse, PatchOp, SearchRequest, BulkRequest, Error) are written
here by hand, since the registry knows resources, not endpoints.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from provisor.config import Settings
from provisor.schema.model import Attribute, ResourceType, Schema
from provisor.schema.registry import CATALOGUE_TYPES, Registry

_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "decimal": {"type": "number"},
    "integer": {"type": "integer"},
    "dateTime": {"type": "string", "format": "date-time"},
    "binary": {"type": "string", "contentEncoding": "base64"},
    "reference": {"type": "string", "format": "uri-reference"},
}
MESSAGES = "urn:ietf:params:scim:api:messages:2.0:"


def _attribute(attr: Attribute) -> dict[str, Any]:
    if attr.is_complex:
        one: dict[str, Any] = {
            "type": "object",
            "properties": {sub.name: _attribute(sub) for sub in attr.sub_attributes},
        }
    else:
        one = dict(_TYPES.get(attr.type, {}))
        if attr.canonical_values and attr.type == "string":
            one["examples"] = list(attr.canonical_values)
    if attr.description:
        one["description"] = attr.description
    if attr.mutability == "readOnly":
        one["readOnly"] = True
    if attr.mutability == "writeOnly" or attr.returned == "never":
        one["writeOnly"] = True
    return {"type": "array", "items": one} if attr.multi_valued else one


def _schema(schema: Schema) -> dict[str, Any]:
    return {
        "type": "object",
        "description": schema.description or schema.name,
        "properties": {a.name: _attribute(a) for a in schema.attributes},
        "required": [a.name for a in schema.attributes if a.required and a.mutability != "readOnly"],
    }


def _resource(rt: ResourceType) -> dict[str, Any]:
    body = _schema(rt.schema)
    props = body["properties"]
    props["schemas"] = {"type": "array", "items": {"type": "string", "format": "uri"}}
    props["id"] = {"type": "string", "readOnly": True}
    props["externalId"] = {"type": "string"}
    props["meta"] = {"type": "object", "readOnly": True}
    for ext in rt.extensions:
        props[ext.schema.id] = {"$ref": f"#/components/schemas/{_ref_name(ext.schema)}"}
    return body


def _ref_name(schema: Schema) -> str:
    return "".join(ch for ch in schema.name if ch.isalnum()) or "Extension"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/scim+json": {"schema": schema}, "application/json": {"schema": schema}}


def _error_responses(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": "#/components/responses/Error"} for s in statuses}


def _query_params() -> list[dict[str, Any]]:
    names = ("filter", "sortBy", "sortOrder", "startIndex", "count", "cursor", "attributes")
    params = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names]
    params.append(
        {"name": "excludedAttributes", "in": "query", "required": False, "schema": {"type": "string"}}
    )
    return params


def _projection_params() -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
        for n in ("attributes", "excludedAttributes")
    ]


def _resource_paths(rt: ResourceType) -> dict[str, Any]:
    name = rt.name
    resource = _ref(name)
    endpoint = "/" + rt.endpoint.strip("/")
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    etag = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}
    ok = {"description": name, "content": _content(resource)}
    return {
        endpoint: {
            "get": {
                "summary": f"List or filter {rt.endpoint.strip('/')}",
                "parameters": _query_params(),
                "responses": {
                    "200": {"description": "ListResponse", "content": _content(_ref("ListResponse"))},
                    **_error_responses(400, 401, 429),
                },
            },
            "post": {
                "summary": f"Create a {name}",
                "parameters": _projection_params(),
                "requestBody": {"required": True, "content": _content(resource)},
                "responses": {"201": ok, **_error_responses(400, 401, 409, 413, 415, 429)},
            },
        },
        f"{endpoint}/.search": {
            "post": {
                "summary": f"Search {rt.endpoint.strip('/')}",
                "requestBody": {"required": True, "content": _content(_ref("SearchRequest"))},
                "responses": {
                    "200": {"description": "ListResponse", "content": _content(_ref("ListResponse"))},
                    **_error_responses(400, 401, 429),
                },
            }
        },
        f"{endpoint}/{{id}}": {
            "parameters": [id_param],
            "get": {
                "summary": f"Get a {name}",
                "parameters": _projection_params(),
                "responses": {
                    "200": ok,
                    "304": {"description": "Not modified"},
                    **_error_responses(401, 404),
                },
            },
            "put": {
                "summary": f"Replace a {name}",
                "parameters": [etag, *_projection_params()],
                "requestBody": {"required": True, "content": _content(resource)},
                "responses": {"200": ok, **_error_responses(400, 401, 404, 409, 412, 413, 415, 429)},
            },
            "patch": {
                "summary": f"Modify a {name}",
                "parameters": [etag, *_projection_params()],
                "requestBody": {"required": True, "content": _content(_ref("PatchOp"))},
                "responses": {
                    "200": ok,
                    "204": {"description": "Modified (no body)"},
                    **_error_responses(400, 401, 404, 409, 412, 413, 415, 429),
                },
            },
            "delete": {
                "summary": f"Delete a {name}",
                "parameters": [etag],
                "responses": {"204": {"description": "Deleted"}, **_error_responses(401, 404, 412, 429)},
            },
        },
    }


def _messages() -> dict[str, Any]:
    error = {
        "type": "object",
        "required": ["schemas", "status"],
        "properties": {
            "schemas": {"type": "array", "items": {"const": MESSAGES + "Error"}},
            "status": {"type": "string"},
            "scimType": {"type": "string"},
            "detail": {"type": "string"},
        },
    }
    return {
        "Error": error,
        "ListResponse": {
            "type": "object",
            "properties": {
                "schemas": {"type": "array", "items": {"const": MESSAGES + "ListResponse"}},
                "totalResults": {"type": "integer"},
                "startIndex": {"type": "integer"},
                "itemsPerPage": {"type": "integer"},
                "nextCursor": {"type": "string"},
                "Resources": {"type": "array", "items": {"type": "object"}},
            },
        },
        "SearchRequest": {
            "type": "object",
            "properties": {
                "schemas": {"type": "array", "items": {"const": MESSAGES + "SearchRequest"}},
                "filter": {"type": "string"},
                "sortBy": {"type": "string"},
                "sortOrder": {"enum": ["ascending", "descending"]},
                "startIndex": {"type": "integer"},
                "count": {"type": "integer"},
                "cursor": {"type": "string"},
                "attributes": {"type": "array", "items": {"type": "string"}},
                "excludedAttributes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "PatchOp": {
            "type": "object",
            "required": ["schemas", "Operations"],
            "properties": {
                "schemas": {"type": "array", "items": {"const": MESSAGES + "PatchOp"}},
                "Operations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["op"],
                        "properties": {"op": {"type": "string"}, "path": {"type": "string"}, "value": {}},
                    },
                },
            },
        },
        "BulkRequest": {
            "type": "object",
            "required": ["schemas", "Operations"],
            "properties": {
                "schemas": {"type": "array", "items": {"const": MESSAGES + "BulkRequest"}},
                "failOnErrors": {"type": "integer"},
                "Operations": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def _read_only(item: dict[str, Any]) -> dict[str, Any]:
    """A path item without its writes; `/.search` keeps its POST, which only reads."""
    searching = any(
        op.get("summary", "").startswith("Search") for op in item.values() if isinstance(op, dict)
    )
    return {
        key: op for key, op in item.items() if key in ("get", "parameters") or (searching and key == "post")
    }


def openapi_document(registry: Registry, settings: Settings) -> dict[str, Any]:
    schemas = _messages()
    paths: dict[str, Any] = {}
    for rt in registry.resource_types.values():
        schemas[rt.name] = _resource(rt)
        for ext in rt.extensions:
            schemas[_ref_name(ext.schema)] = _schema(ext.schema)
        if rt.name in CATALOGUE_TYPES:  # read-only: list, search and read (docs/entitlements.md)
            paths.update({path: _read_only(item) for path, item in _resource_paths(rt).items()})
        else:
            paths.update(_resource_paths(rt))
    discovery = {"description": "Discovery document", "content": _content({"type": "object"})}
    for path in ("/ServiceProviderConfig", "/Schemas", "/ResourceTypes"):
        paths[path] = {"get": {"summary": path.strip("/"), "responses": {"200": discovery}}}
    paths["/.search"] = {
        "post": {
            "summary": "Search every resource type",
            "requestBody": {"required": True, "content": _content(_ref("SearchRequest"))},
            "responses": {
                "200": {"description": "ListResponse", "content": _content(_ref("ListResponse"))},
                **_error_responses(400, 401, 429),
            },
        }
    }
    paths["/Bulk"] = {
        "post": {
            "summary": "Bulk operations",
            "description": f"At most {settings.bulk_max_operations} operations and "
            f"{settings.bulk_max_payload_bytes} bytes.",
            "requestBody": {"required": True, "content": _content(_ref("BulkRequest"))},
            "responses": {
                "200": {"description": "BulkResponse", "content": _content({"type": "object"})},
                **_error_responses(400, 401, 413, 429),
            },
        }
    }
    base = (settings.base_url or "/scim/v2").rstrip("/")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Provisor SCIM 2.0 API",
            "version": "2.0",
            "description": "RFC 7643 / RFC 7644 service provider. Errors are SCIM Error messages.",
        },
        "servers": [{"url": base}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
            "responses": {
                "Error": {"description": "SCIM error", "content": _content(_ref("Error"))},
            },
        },
    }


def openapi_endpoint(registry: Registry, settings: Settings) -> Any:
    body = orjson.dumps(openapi_document(registry, settings))

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return openapi
