"""The built-in schema documents load, and say what RFC 7643 sections 4 and 8.7 say."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from provisor.errors import ScimError
from provisor.schema.model import Attribute, ResourceType, Schema
from provisor.schema.registry import (
    ENTERPRISE_URN,
    GROUP_URN,
    RESOURCE_TYPE_URN,
    SCHEMA_URN,
    SPC_URN,
    USER_URN,
    Registry,
    SchemaFileError,
    default_registry,
)

DATA_FILES = (
    "user.json",
    "group.json",
    "enterprise_user.json",
    "service_provider_config.json",
    "resource_type.json",
    "schema.json",
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return default_registry()


@pytest.fixture(scope="module")
def user(registry: Registry) -> ResourceType:
    return registry.resource_type("User")


def _attr(schema: Schema, name: str) -> Attribute:
    found = schema.attribute(name)
    assert found is not None, name
    return found


def _walk(attributes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for attribute in attributes:
        out.append(attribute)
        out.extend(_walk(attribute.get("subAttributes", [])))
    return out


@pytest.mark.parametrize("filename", DATA_FILES)
def test_documents_are_complete_rfc7643_section7_schemas(filename: str) -> None:
    text = resources.files("provisor.schema").joinpath("data").joinpath(filename).read_text("utf-8")
    doc = json.loads(text)
    assert doc["id"].startswith("urn:ietf:params:scim:schemas:")
    assert doc["name"] and doc["description"]
    for attribute in _walk(doc["attributes"]):
        for key in ("name", "type", "multiValued", "description", "required", "mutability", "returned"):
            assert key in attribute, (filename, attribute["name"], key)
        if attribute["type"] == "complex":
            assert attribute["subAttributes"], attribute["name"]
        else:
            assert "caseExact" in attribute and "uniqueness" in attribute, attribute["name"]
        if attribute["type"] == "reference":
            assert attribute["referenceTypes"], attribute["name"]
    names = {attribute["name"] for attribute in doc["attributes"]}
    if filename in ("user.json", "group.json", "enterprise_user.json"):
        assert not names & {"id", "externalId", "meta"}, "common attributes come from the registry"


def test_default_registry_has_user_group_and_meta_schemas(registry: Registry) -> None:
    assert set(registry.resource_types) == {"User", "Group", "Entitlement", "Role"}
    assert registry.resource_type("users").schema.id == USER_URN
    assert registry.resource_type("/Groups").schema.id == GROUP_URN
    assert [ext.schema.id for ext in registry.resource_type("User").extensions] == [ENTERPRISE_URN]
    for urn in (USER_URN, GROUP_URN, ENTERPRISE_URN, SPC_URN, RESOURCE_TYPE_URN, SCHEMA_URN):
        assert registry.schema(urn.upper()) is not None, urn


def test_user_schema_has_every_rfc7643_section_4_1_attribute(user: ResourceType) -> None:
    expected = {
        "userName", "name", "displayName", "nickName", "profileUrl", "title", "userType",
        "preferredLanguage", "locale", "timezone", "active", "password", "emails", "phoneNumbers",
        "ims", "photos", "addresses", "groups", "entitlements", "roles", "x509Certificates",
    }  # fmt: skip
    assert {attribute.name for attribute in user.schema.attributes} == expected


def test_user_characteristics(user: ResourceType) -> None:
    user_name = _attr(user.schema, "USERNAME")
    assert (user_name.required, user_name.case_exact, user_name.uniqueness) == (True, False, "server")
    password = _attr(user.schema, "password")
    assert (password.mutability, password.returned) == ("writeOnly", "never")
    groups = _attr(user.schema, "groups")
    assert groups.read_only and groups.multi_valued
    assert all(sub.read_only for sub in groups.sub_attributes)
    emails = _attr(user.schema, "emails")
    assert emails.multi_valued and emails.is_complex
    assert {sub.name for sub in emails.sub_attributes} == {"value", "display", "type", "primary"}
    value = emails.sub("VALUE")
    assert value is not None and not value.case_exact
    primary = emails.sub("primary")
    assert primary is not None and primary.type == "boolean"
    email_type = emails.sub("type")
    assert email_type is not None and email_type.canonical_values == ("work", "home", "other")
    assert _attr(user.schema, "active").type == "boolean"
    photo_value = _attr(user.schema, "photos").sub("value")
    assert photo_value is not None and photo_value.type == "reference"
    cert_value = _attr(user.schema, "x509Certificates").sub("value")
    assert cert_value is not None and cert_value.type == "binary"
    name = _attr(user.schema, "name")
    assert not name.multi_valued
    assert name.sub("givenName") is not None and name.sub("honorificSuffix") is not None


def test_group_schema(registry: Registry) -> None:
    group = registry.resource_type("Group").schema
    assert _attr(group, "displayName").required
    members = _attr(group, "members")
    assert members.multi_valued and members.mutability == "readWrite"
    value, ref, member_type = members.sub("value"), members.sub("$ref"), members.sub("type")
    assert value is not None and value.mutability == "immutable"
    assert ref is not None and ref.type == "reference" and set(ref.reference_types) == {"User", "Group"}
    assert member_type is not None and member_type.canonical_values == ("User", "Group")
    assert members.sub("display") is not None


def test_enterprise_extension(registry: Registry) -> None:
    enterprise = registry.schema(ENTERPRISE_URN)
    assert enterprise is not None
    names = [attribute.name for attribute in enterprise.attributes]
    assert names == ["employeeNumber", "costCenter", "organization", "division", "department", "manager"]
    manager = _attr(enterprise, "manager")
    display_name = manager.sub("displayName")
    assert display_name is not None and display_name.read_only
    assert manager.sub("value") is not None and manager.sub("$ref") is not None


def test_meta_schemas_are_read_only(registry: Registry) -> None:
    for urn in (SPC_URN, RESOURCE_TYPE_URN, SCHEMA_URN):
        schema = registry.schema(urn)
        assert schema is not None
        assert all(attribute.read_only for attribute in schema.attributes), urn
    spc = registry.schema(SPC_URN)
    assert spc is not None
    assert {a.name for a in spc.attributes} >= {"patch", "bulk", "filter", "etag", "authenticationSchemes"}
    schema_schema = registry.schema(SCHEMA_URN)
    assert schema_schema is not None
    sub_attributes = _attr(schema_schema, "attributes").sub("subAttributes")
    assert sub_attributes is not None and sub_attributes.sub("mutability") is not None


def test_to_scim_round_trips(registry: Registry) -> None:
    for schema in registry.schemas.values():
        assert Schema.from_scim(schema.to_scim()) == schema


def test_resolve_paths(registry: Registry, user: ResourceType) -> None:
    path = registry.resolve(user, "NAME.givenname")
    assert path is not None and path.keys == ("name", "givenName")
    path = registry.resolve(user, f"{ENTERPRISE_URN.lower()}:manager.VALUE")
    assert path is not None and path.keys == (ENTERPRISE_URN, "manager", "value")
    path = registry.resolve(user, f"{USER_URN}:userName")
    assert path is not None and path.urn is None and path.dotted == "userName"
    path = registry.resolve(user, "meta.lastModified")
    assert path is not None and path.is_common
    assert registry.resolve(user, "nosuch") is None
    with pytest.raises(ScimError) as info:
        registry.resolve(user, "urn:example:unknown:attr")
    assert info.value.scim_type == "invalidPath"


# ---- custom schema extension files are checked when loaded ----------------------------------------

_EXT_ID = "urn:acme:params:scim:schemas:extension:2.0:Check"


def _ext(*attributes: Any, **top: Any) -> dict[str, Any]:
    return {"id": _EXT_ID, "name": "Check", "attributes": list(attributes), **top}


BAD_EXTENSIONS = [
    pytest.param(
        _ext({"name": "badge", "type": "strng"}), "'badge': unknown type 'strng'", id="unknown-type"
    ),
    pytest.param(_ext({"type": "string"}), "attribute #1: has no name", id="missing-name"),
    pytest.param(
        _ext({"name": "a", "mutability": "sometimes"}), "'a': mutability 'sometimes'", id="mutability"
    ),
    pytest.param(_ext({"name": "a", "returned": "maybe"}), "'a': returned 'maybe'", id="returned"),
    pytest.param(_ext({"name": "a", "uniqueness": "unique"}), "'a': uniqueness 'unique'", id="uniqueness"),
    pytest.param(
        _ext({"name": "a", "type": "string", "subAttributes": [{"name": "b"}]}),
        "'a': subAttributes given but its type is 'string'",
        id="subattributes-on-string",
    ),
    pytest.param(_ext({"name": "a"}, {"name": "A"}), "'A': duplicate name", id="duplicate"),
    pytest.param(
        _ext({"name": "a", "type": "complex", "subAttributes": [{"name": "b", "type": "integr"}]}),
        "'a.b': unknown type 'integr'",
        id="bad-sub-attribute",
    ),
    pytest.param({"name": "no id", "attributes": []}, 'has no schema "id"', id="missing-id"),
    pytest.param(_ext({"name": "a", "required": "yes"}), "'a': required must be true or false", id="flag"),
]


@pytest.mark.parametrize(("doc", "problem"), BAD_EXTENSIONS)
def test_bad_extension_files_are_refused_naming_file_and_attribute(
    doc: dict[str, Any], problem: str, tmp_path: Any
) -> None:
    path = tmp_path / "ext.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaFileError) as caught:
        default_registry([path])
    message = str(caught.value)
    assert str(path) in message and problem in message
    assert len(message.splitlines()) == 1


def test_invalid_json_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "ext.json"
    path.write_text('{"id": "urn:x", "attributes": [')
    with pytest.raises(SchemaFileError, match="not valid JSON"):
        default_registry([path])


def test_a_sound_extension_still_loads(tmp_path: Any) -> None:
    path = tmp_path / "ext.json"
    doc = _ext(
        {"name": "badge", "type": "string", "uniqueness": "server", "mutability": "immutable"},
        {"name": "door", "type": "complex", "multiValued": True, "subAttributes": [{"name": "value"}]},
        **{"x-resourceType": "Group"},
    )
    path.write_text(json.dumps(doc))
    registry = default_registry([path])
    assert registry.resource_type("Group").extension(_EXT_ID) is not None
