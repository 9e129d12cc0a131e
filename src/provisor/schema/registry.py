"""The attribute registry: schemas loaded from JSON data, looked up case-insensitively.

Schemas are data (RFC 7643 section 8.7 documents under `schema/data/`), so a custom extension is
one more JSON file, validated and served exactly like the built-in ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from provisor.errors import ScimError
from provisor.schema.model import (
    ALL_TYPES,
    COMPLEX,
    DATETIME,
    REFERENCE,
    STRING,
    Attribute,
    AttrPath,
    Extension,
    ResourceType,
    Schema,
)

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
#: Okta Identity Governance's catalogue schemas (docs/entitlements.md).
ENTITLEMENT_URN = "urn:okta:scim:schemas:core:1.0:Entitlement"
ROLE_URN = "urn:okta:scim:schemas:core:1.0:Role"
#: Resource types whose resources are the application's catalogue, read-only over SCIM.
CATALOGUE_TYPES = ("Entitlement", "Role")

#: RFC 7643 section 3.1: attributes every resource has, whatever its schema.
COMMON_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        name="id",
        case_exact=True,
        mutability="readOnly",
        returned="always",
        uniqueness="server",
        description="Unique identifier for the resource, assigned by the service provider.",
    ),
    Attribute(
        name="externalId",
        case_exact=True,
        description="Identifier of the resource as defined by the provisioning client.",
    ),
    Attribute(
        name="meta",
        type=COMPLEX,
        mutability="readOnly",
        description="Resource metadata.",
        sub_attributes=(
            Attribute(name="resourceType", case_exact=True, mutability="readOnly"),
            Attribute(name="created", type=DATETIME, mutability="readOnly"),
            Attribute(name="lastModified", type=DATETIME, mutability="readOnly"),
            Attribute(
                name="location",
                type=REFERENCE,
                case_exact=True,
                mutability="readOnly",
                reference_types=("uri",),
            ),
            Attribute(name="version", type=STRING, case_exact=True, mutability="readOnly"),
        ),
    ),
)
_COMMON_BY_LOWER = {attr.name.lower(): attr for attr in COMMON_ATTRIBUTES}


def _load_builtin(filename: str) -> dict[str, Any]:
    text = resources.files("provisor.schema").joinpath("data", filename).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class SchemaFileError(ValueError):
    """A custom schema extension file Provisor cannot serve; the message names the file and attribute."""


MUTABILITIES = ("readOnly", "readWrite", "immutable", "writeOnly")
RETURNED = ("always", "never", "default", "request")
UNIQUENESS = ("none", "server", "global")
_FLAGS = ("multiValued", "required", "caseExact")
_ENUMERATED = (("mutability", MUTABILITIES), ("returned", RETURNED), ("uniqueness", UNIQUENESS))


def _check_attributes(attributes: Any, where: str, parent: str | None = None) -> list[str]:
    """The problems of an RFC 7643 section 7 attribute list (empty when it is sound)."""
    if not isinstance(attributes, list):
        return [f"{where}: must be a list of attributes"]
    problems: list[str] = []
    seen: dict[str, str] = {}
    for index, attr in enumerate(attributes, 1):
        label = f"attribute #{index}" if parent is None else f"sub-attribute #{index} of {parent!r}"
        if not isinstance(attr, dict):
            problems.append(f"{label}: must be a JSON object")
            continue
        name = attr.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{label}: has no name")
            continue
        label = f"attribute {name!r}" if parent is None else f"attribute '{parent}.{name}'"
        if name.lower() in seen:
            problems.append(f"{label}: duplicate name (attribute names are case-insensitive)")
        seen[name.lower()] = name
        kind = attr.get("type", STRING)
        if kind not in ALL_TYPES:
            problems.append(f"{label}: unknown type {kind!r}; use one of {', '.join(ALL_TYPES)}")
        for key, allowed in (
            ("mutability", MUTABILITIES),
            ("returned", RETURNED),
            ("uniqueness", UNIQUENESS),
        ):
            if key in attr and attr[key] not in allowed:
                problems.append(f"{label}: {key} {attr[key]!r} is not one of {', '.join(allowed)}")
        for key in _FLAGS:
            if key in attr and not isinstance(attr[key], bool):
                problems.append(f"{label}: {key} must be true or false")
        for key in ("canonicalValues", "referenceTypes"):
            if key in attr and not (
                isinstance(attr[key], list) and all(isinstance(v, str) for v in attr[key])
            ):
                problems.append(f"{label}: {key} must be a list of strings")
        subs = attr.get("subAttributes")
        if subs is not None and kind != COMPLEX:
            problems.append(f"{label}: subAttributes given but its type is {kind!r}, not 'complex'")
        elif kind == COMPLEX and parent is not None:
            problems.append(f"{label}: a sub-attribute cannot be complex (RFC 7643 section 2.3.8)")
        elif subs is not None:
            problems.extend(_check_attributes(subs, label, name))
    return problems


def check_schema_document(data: Any) -> list[str]:
    """The problems of a schema extension document (empty when Provisor can serve it)."""
    if not isinstance(data, dict):
        return ["the file must hold one JSON object (an RFC 7643 section 7 schema)"]
    problems: list[str] = []
    schema_id = data.get("id")
    if not isinstance(schema_id, str) or not schema_id.strip():
        problems.append(
            'has no schema "id" (a URN such as urn:example:params:scim:schemas:extension:2.0:Badge)'
        )
    elif not schema_id.lower().startswith("urn:"):
        problems.append(f"schema id must be a URN, got {schema_id!r}")
    target = data.get("x-resourceType", "User")
    if not isinstance(target, str) or target.lower() not in ("user", "group"):
        problems.append(f'"x-resourceType" must be "User" or "Group", got {target!r}')
    problems.extend(_check_attributes(data.get("attributes"), '"attributes"'))
    return problems


def _read_schema_file(path: str | Path) -> dict[str, Any]:
    """The checked JSON of a schema extension file, or SchemaFileError naming file and problem."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaFileError(f"schema extension {path}: cannot read it: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SchemaFileError(f"schema extension {path}: not valid JSON: {exc}") from None
    problems = check_schema_document(data)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise SchemaFileError(f"schema extension {path}: {problems[0]}{more}")
    result: dict[str, Any] = data
    return result


def load_schema_file(path: str | Path) -> Schema:
    """Load a custom schema extension written in the RFC 7643 section 7 format, checked first:
    a typo such as `"type": "strng"` must stop start-up, not be advertised under /Schemas."""
    return Schema.from_scim(_read_schema_file(path))


class Registry:
    """Resource types and their schemas, plus path resolution for filters, PATCH and projection."""

    def __init__(self, resource_types: Iterable[ResourceType], meta_schemas: Iterable[Schema] = ()) -> None:
        self.resource_types: dict[str, ResourceType] = {rt.name: rt for rt in resource_types}
        self._by_endpoint = {rt.endpoint.strip("/").lower(): rt for rt in self.resource_types.values()}
        self._by_lower_name = {name.lower(): rt for name, rt in self.resource_types.items()}
        schemas: dict[str, Schema] = {}
        for rt in self.resource_types.values():
            schemas[rt.schema.id] = rt.schema
            for ext in rt.extensions:
                schemas[ext.schema.id] = ext.schema
        for schema in meta_schemas:
            schemas[schema.id] = schema
        self.schemas = schemas
        self._schemas_by_lower = {urn.lower(): s for urn, s in schemas.items()}

    # ---- lookups -------------------------------------------------------------------------------

    def resource_type(self, name: str) -> ResourceType:
        """By name ("User") or endpoint ("Users"), case-insensitively; KeyError when unknown."""
        key = name.strip("/").lower()
        found = self._by_lower_name.get(key) or self._by_endpoint.get(key)
        if found is None:
            raise KeyError(name)
        return found

    def schema(self, urn: str) -> Schema | None:
        return self._schemas_by_lower.get(urn.lower())

    # ---- path resolution ----------------------------------------------------------------------

    def split_urn(self, rt: ResourceType, text: str) -> tuple[str | None, str]:
        """Split a possibly URN-qualified path into (schema URN or None, rest).

        The URN returned is the canonical id of a schema of `rt`; the core schema's URN yields
        None because core attributes live at the top level of the stored document. A path that
        *is* exactly an extension URN returns (urn, "").
        """
        lowered = text.lower()
        if not lowered.startswith("urn:"):
            return None, text
        for urn in sorted(rt.schema_ids, key=len, reverse=True):
            low_urn = urn.lower()
            if lowered == low_urn:
                return (None if urn == rt.schema.id else urn), ""
            if lowered.startswith(low_urn + ":"):
                rest = text[len(urn) + 1 :]
                return (None if urn == rt.schema.id else urn), rest
        raise ScimError(400, f"unknown schema in attribute path {text!r}", "invalidPath")

    def resolve_parts(
        self, rt: ResourceType, urn: str | None, name: str, sub: str | None = None
    ) -> AttrPath | None:
        """Resolve (schema URN, attribute, sub-attribute) to canonical attributes; None if unknown."""
        attribute: Attribute | None
        if urn is None or urn.lower() == rt.schema.id.lower():
            canonical_urn: str | None = None
            attribute = rt.schema.attribute(name) or _COMMON_BY_LOWER.get(name.lower())
        else:
            ext = rt.extension(urn)
            if ext is None:
                return None
            canonical_urn = ext.schema.id
            attribute = ext.schema.attribute(name)
        if attribute is None:
            return None
        if sub is None:
            return AttrPath(canonical_urn, attribute)
        sub_attribute = attribute.sub(sub)
        if sub_attribute is None:
            return None
        return AttrPath(canonical_urn, attribute, sub_attribute)

    def resolve(self, rt: ResourceType, text: str) -> AttrPath | None:
        """Resolve a textual path such as `name.givenName` or `urn:...:User:manager.value`."""
        urn, rest = self.split_urn(rt, text)
        if not rest:
            return None
        name, _, sub = rest.partition(".")
        if "." in sub:
            return None
        return self.resolve_parts(rt, urn, name, sub or None)


def default_registry(extension_files: Iterable[str | Path] = ()) -> Registry:
    """The built-in resource types (User with the Enterprise extension, Group, and the read-only
    Entitlement and Role catalogues) plus custom extensions.

    A custom extension file extends the User resource type unless the schema document carries a
    non-standard `"x-resourceType": "Group"` key naming another resource type.
    """
    user = Schema.from_scim(_load_builtin("user.json"))
    group = Schema.from_scim(_load_builtin("group.json"))
    enterprise = Schema.from_scim(_load_builtin("enterprise_user.json"))
    user_exts: list[Extension] = [Extension(enterprise)]
    group_exts: list[Extension] = []
    for path in extension_files:
        data = _read_schema_file(path)
        schema = Schema.from_scim(data)
        target = data.get("x-resourceType", "User")
        (group_exts if str(target).lower() == "group" else user_exts).append(Extension(schema))
    meta = [
        Schema.from_scim(_load_builtin(name))
        for name in ("service_provider_config.json", "resource_type.json", "schema.json")
    ]
    return Registry(
        [
            ResourceType("User", "/Users", "User Account", user, tuple(user_exts)),
            ResourceType("Group", "/Groups", "Group", group, tuple(group_exts)),
            ResourceType(
                "Entitlement",
                "/Entitlements",
                "Entitlements the application offers (read-only)",
                Schema.from_scim(_load_builtin("okta_entitlement.json")),
            ),
            ResourceType(
                "Role",
                "/Roles",
                "Roles the application offers (read-only)",
                Schema.from_scim(_load_builtin("okta_role.json")),
            ),
        ],
        meta,
    )
