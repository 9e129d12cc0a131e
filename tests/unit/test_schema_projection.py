"""Projection: `attributes` / `excludedAttributes` (RFC 7644 section 3.9) and `returned`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from provisor.schema.model import AttrPath, Extension, ResourceType, Schema
from provisor.schema.projection import is_requested, parse_attribute_list, project
from provisor.schema.registry import ENTERPRISE_URN, GROUP_URN, USER_URN, Registry, default_registry

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
GROUP = REGISTRY.resource_type("Group")

RESOURCE: dict[str, Any] = {
    "schemas": [USER_URN, ENTERPRISE_URN],
    "id": "2819c223",
    "externalId": "701984",
    "userName": "bjensen",
    "name": {"givenName": "Barbara", "familyName": "Jensen"},
    "emails": [{"value": "b@x", "type": "work", "primary": True}, {"value": "babs@y", "type": "home"}],
    "groups": [{"value": "g1", "display": "Tour Guides", "type": "direct"}],
    "active": True,
    "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22.000000Z", "version": 'W/"3"'},
    ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "m1", "displayName": "John"}},
}


def parse(text: str | None, rt: ResourceType = USER) -> tuple[AttrPath, ...] | None:
    return parse_attribute_list(REGISTRY, rt, text)


def run(attributes: str | None = None, excluded: str | None = None) -> dict[str, Any]:
    original = copy.deepcopy(RESOURCE)
    out = project(REGISTRY, USER, RESOURCE, parse(attributes), parse(excluded))
    assert original == RESOURCE, "project must not mutate its input"
    return out


# ---- parsing --------------------------------------------------------------------------------


def test_parse_none_and_empty() -> None:
    assert parse(None) is None
    assert parse("") is None
    assert parse(" , ") is None
    assert parse("nosuch,alsoNot") is None


def test_parse_names_subs_urns_case_and_whitespace() -> None:
    paths = parse(
        f" USERNAME , name.GivenName,{ENTERPRISE_URN.lower()}:manager.value ,{USER_URN}:emails,bogus"
    )
    assert paths is not None
    assert [str(path) for path in paths] == [
        "userName",
        "name.givenName",
        f"{ENTERPRISE_URN}:manager.value",
        "emails",
    ]


def test_parse_bare_extension_urn_names_all_its_attributes() -> None:
    paths = parse(ENTERPRISE_URN)
    assert paths is not None
    assert {path.attribute.name for path in paths} == {
        "employeeNumber", "costCenter", "organization", "division", "department", "manager",
    }  # fmt: skip
    assert all(path.urn == ENTERPRISE_URN for path in paths)


def test_parse_ignores_unknown_extension_and_deduplicates() -> None:
    paths = parse("urn:example:nope:attr,userName,USERNAME")
    assert paths is not None and [str(path) for path in paths] == ["userName"]


# ---- no parameters: returned characteristics ----------------------------------------------


def test_no_parameters_returns_default_and_always() -> None:
    assert run() == RESOURCE


def test_returned_never_is_never_returned() -> None:
    resource = {**RESOURCE, "password": "leaked?"}
    assert "password" not in project(REGISTRY, USER, resource)
    assert "password" not in project(REGISTRY, USER, resource, parse("password"))


# ---- attributes ---------------------------------------------------------------------------


def test_attributes_keeps_named_plus_always() -> None:
    assert run("userName") == {"schemas": [USER_URN], "id": "2819c223", "userName": "bjensen"}


def test_attributes_always_cannot_be_dropped_and_schemas_kept() -> None:
    out = run("displayName")  # not set on the resource
    assert out == {"schemas": [USER_URN], "id": "2819c223"}


def test_attributes_sub_attribute_granularity() -> None:
    out = run("name.givenName,emails.value")
    assert out["name"] == {"givenName": "Barbara"}
    assert out["emails"] == [{"value": "b@x"}, {"value": "babs@y"}]
    assert "userName" not in out


def test_attributes_parent_and_sub_keeps_whole_parent() -> None:
    assert run("name,name.givenName")["name"] == RESOURCE["name"]


def test_attributes_extension_attribute_and_whole_extension() -> None:
    out = run(f"{ENTERPRISE_URN}:manager.value")
    assert out[ENTERPRISE_URN] == {"manager": {"value": "m1"}}
    assert out["schemas"] == [USER_URN, ENTERPRISE_URN]
    out = run(ENTERPRISE_URN)
    assert out[ENTERPRISE_URN] == RESOURCE[ENTERPRISE_URN]
    assert "userName" not in out


def test_attributes_not_naming_the_extension_drops_it_and_its_schema() -> None:
    out = run("userName")
    assert ENTERPRISE_URN not in out
    assert out["schemas"] == [USER_URN]


def test_attributes_meta_sub_attribute() -> None:
    assert run("meta.version")["meta"] == {"version": 'W/"3"'}


def test_attributes_wins_over_excluded() -> None:
    out = run(attributes="userName", excluded="userName")
    assert out["userName"] == "bjensen"


# ---- excludedAttributes ---------------------------------------------------------------------


def test_excluded_drops_named_only() -> None:
    out = run(excluded="emails,meta")
    assert "emails" not in out and "meta" not in out
    assert out["userName"] == "bjensen" and out["groups"] == RESOURCE["groups"]


def test_excluded_cannot_drop_always() -> None:
    out = run(excluded="id,schemas,userName")
    assert out["id"] == "2819c223" and out["schemas"] == RESOURCE["schemas"]
    assert "userName" not in out


def test_excluded_sub_attributes() -> None:
    out = run(excluded="emails.value,name.familyName")
    assert out["emails"] == [{"type": "work", "primary": True}, {"type": "home"}]
    assert out["name"] == {"givenName": "Barbara"}


def test_excluded_sub_attribute_leaving_nothing_drops_the_attribute() -> None:
    out = run(excluded="name.givenName,name.familyName")
    assert "name" not in out


def test_excluded_whole_extension_drops_key_and_schema() -> None:
    out = run(excluded=ENTERPRISE_URN)
    assert ENTERPRISE_URN not in out
    assert out["schemas"] == [USER_URN]


def test_excluded_extension_attributes() -> None:
    out = run(excluded=f"{ENTERPRISE_URN}:manager.displayName")
    assert out[ENTERPRISE_URN] == {"employeeNumber": "701984", "manager": {"value": "m1"}}


def test_excluded_groups_members() -> None:
    group = {"schemas": [GROUP_URN], "id": "g1", "displayName": "G", "members": [{"value": "u1"}]}
    out = project(REGISTRY, GROUP, group, excluded=parse("MEMBERS", GROUP))
    assert out == {"schemas": [GROUP_URN], "id": "g1", "displayName": "G"}


# ---- returned: request and always on custom schemas ----------------------------------------


def _custom() -> tuple[Registry, ResourceType]:
    urn = "urn:example:acme:2.0:Audit"
    audit = Schema.from_scim(
        {
            "id": urn,
            "name": "Audit",
            "attributes": [
                {"name": "riskScore", "type": "integer", "returned": "request"},
                {"name": "tenantCode", "returned": "always"},
                {
                    "name": "login",
                    "type": "complex",
                    "subAttributes": [
                        {"name": "at", "type": "dateTime"},
                        {"name": "ip", "returned": "request"},
                        {"name": "kind", "returned": "always"},
                    ],
                },
            ],
        }
    )
    rt = ResourceType("User", "/Users", "User", USER.schema, (Extension(audit),))
    return Registry([rt]), rt


AUDIT = "urn:example:acme:2.0:Audit"
AUDITED: dict[str, Any] = {
    "schemas": [USER_URN, AUDIT],
    "id": "u1",
    "userName": "b",
    AUDIT: {"riskScore": 7, "tenantCode": "T", "login": {"at": "x", "ip": "10.0.0.1", "kind": "sso"}},
}


@pytest.mark.parametrize(
    ("attributes", "excluded", "expected"),
    [
        (None, None, {"tenantCode": "T", "login": {"at": "x", "kind": "sso"}}),
        (f"{AUDIT}:riskScore", None, {"riskScore": 7, "tenantCode": "T"}),
        (f"{AUDIT}:login", None, {"tenantCode": "T", "login": {"at": "x", "ip": "10.0.0.1", "kind": "sso"}}),
        (f"{AUDIT}:login.ip", None, {"tenantCode": "T", "login": {"ip": "10.0.0.1", "kind": "sso"}}),
        (
            None,
            f"{AUDIT}:login.kind,{AUDIT}:tenantCode",
            {"tenantCode": "T", "login": {"at": "x", "kind": "sso"}},
        ),
        (None, f"{AUDIT}:login", {"tenantCode": "T"}),
        ("userName", None, {"tenantCode": "T"}),
    ],
)
def test_returned_request_and_always(
    attributes: str | None, excluded: str | None, expected: dict[str, Any]
) -> None:
    registry, rt = _custom()
    attrs = parse_attribute_list(registry, rt, attributes)
    excl = parse_attribute_list(registry, rt, excluded)
    assert project(registry, rt, AUDITED, attrs, excl)[AUDIT] == expected


# ---- is_requested -----------------------------------------------------------------------------


def test_is_requested() -> None:
    def requested(name: str, attributes: str | None = None, excluded: str | None = None) -> bool:
        return is_requested(REGISTRY, GROUP, name, parse(attributes, GROUP), parse(excluded, GROUP))

    assert requested("members")
    assert not requested("members", attributes="displayName")
    assert requested("members", attributes="members.value")
    assert not requested("members", excluded="members")
    assert requested("members", excluded="displayName")
    assert requested("id", attributes="displayName")
    assert not requested("nosuch")
    assert not is_requested(REGISTRY, USER, "password", None, None)
    assert is_requested(REGISTRY, USER, "groups", None, None)
    assert not is_requested(REGISTRY, USER, "groups", parse("userName"), None)
    assert is_requested(REGISTRY, USER, f"{ENTERPRISE_URN}:manager", parse(ENTERPRISE_URN), None)


def test_is_requested_request_attribute() -> None:
    registry, rt = _custom()
    assert not is_requested(registry, rt, f"{AUDIT}:riskScore", None, None)
    paths = parse_attribute_list(registry, rt, f"{AUDIT}:riskScore")
    assert is_requested(registry, rt, f"{AUDIT}:riskScore", paths, None)
