"""The default projection's per-type plan gives exactly what the general walk gives.

Responses without `attributes`/`excludedAttributes` go through `_DefaultPlan`, which decides each
key's fate once per resource type. These documents mix every case the general walk treats
specially: `never` and `request` attributes and sub-attributes, nulls, empty and falsy elements,
keys of no schema, extension objects that are not objects, and keys in unusual case.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from provisor.schema import projection
from provisor.schema.model import Extension, ResourceType, Schema
from provisor.schema.registry import ENTERPRISE_URN, USER_URN, Registry, default_registry

AUDIT = "urn:example:acme:2.0:Audit"
DEFAULT = default_registry()


def _audited() -> tuple[Registry, ResourceType]:
    base = DEFAULT.resource_type("User")
    audit = Schema.from_scim(
        {
            "id": AUDIT,
            "name": "Audit",
            "attributes": [
                {"name": "riskScore", "type": "integer", "returned": "request"},
                {"name": "secret", "returned": "never"},
                {"name": "tenantCode", "returned": "always"},
                {
                    "name": "login",
                    "type": "complex",
                    "multiValued": True,
                    "subAttributes": [
                        {"name": "at", "type": "dateTime"},
                        {"name": "ip", "returned": "request"},
                        {"name": "pin", "returned": "never"},
                        {"name": "kind", "returned": "always"},
                    ],
                },
            ],
        }
    )
    rt = ResourceType("User", "/Users", "User", base.schema, (*base.extensions, Extension(audit)))
    return Registry([rt]), rt


AUDITED_REGISTRY, AUDITED_USER = _audited()

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-1, 2), st.sampled_from(["", "x", "Work"]), st.just([])
)
sub_keys = st.sampled_from(["value", "VALUE", "type", "primary", "display", "at", "ip", "pin", "kind", "odd"])
elements = st.one_of(scalars, st.dictionaries(sub_keys, scalars, max_size=4))
values = st.one_of(scalars, elements, st.lists(elements, max_size=3))
top_keys = st.sampled_from(
    [
        "id",
        "userName",
        "UserName",
        "name",
        "password",
        "emails",
        "Emails",
        "groups",
        "active",
        "meta",
        "x509Certificates",
        "noSuchAttribute",
        "nickName",
    ]
)
ext_keys = st.sampled_from(
    ["employeeNumber", "manager", "riskScore", "secret", "tenantCode", "login", "Login", "unknown"]
)
ext_values = st.one_of(scalars, st.dictionaries(ext_keys, values, max_size=4))


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = draw(st.dictionaries(top_keys, values, max_size=6))
    schemas = [USER_URN]
    for urn in draw(st.lists(st.sampled_from([ENTERPRISE_URN, AUDIT, AUDIT.upper()]), max_size=2)):
        doc[urn] = draw(ext_values)
        schemas.append(urn)
    if draw(st.booleans()):
        doc["schemas"] = schemas
    return doc


def _general(registry: Registry, rt: ResourceType, doc: dict[str, Any]) -> dict[str, Any]:
    return projection._project(registry, rt, doc, projection._Selection("all"))


@settings(max_examples=400, deadline=None)
@given(documents())
def test_default_plan_matches_the_general_walk(doc: dict[str, Any]) -> None:
    for registry, rt in (
        (DEFAULT, DEFAULT.resource_type("User")),
        (DEFAULT, DEFAULT.resource_type("Group")),
        (AUDITED_REGISTRY, AUDITED_USER),
    ):
        original = copy.deepcopy(doc)
        assert projection.project(registry, rt, doc) == _general(registry, rt, doc)
        assert doc == original, "projection must not change its input"


def test_default_plan_drops_never_and_request_values() -> None:
    doc = {
        "schemas": [USER_URN, AUDIT],
        "userName": "b",
        "password": "hunter2",
        AUDIT: {
            "riskScore": 9,
            "secret": "s",
            "tenantCode": "T",
            "login": [{"at": "x", "ip": "10.0.0.1", "pin": "1234", "kind": "sso"}, {"ip": "10.0.0.2"}],
        },
    }
    out = projection.project(AUDITED_REGISTRY, AUDITED_USER, doc)
    assert out == {
        "schemas": [USER_URN, AUDIT],
        "userName": "b",
        AUDIT: {"tenantCode": "T", "login": [{"at": "x", "kind": "sso"}]},
    }


def test_elements_are_copies_not_the_stored_objects() -> None:
    doc = {"userName": "b", "emails": [{"value": "a@x"}], "name": {"givenName": "B"}}
    out = projection.project(DEFAULT, DEFAULT.resource_type("User"), doc)
    out["emails"][0]["value"] = "changed"
    out["name"]["givenName"] = "changed"
    assert doc == {"userName": "b", "emails": [{"value": "a@x"}], "name": {"givenName": "B"}}
