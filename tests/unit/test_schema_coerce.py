"""Coercion of POST/PUT bodies into stored documents (the contract with storage, filter, PATCH)."""

from __future__ import annotations

from typing import Any

import pytest

from provisor.errors import ScimError
from provisor.schema.coerce import (
    coerce_attribute,
    coerce_resource,
    coerce_value,
    is_empty,
    normalise_datetime,
)
from provisor.schema.model import DATETIME, Attribute, Extension, ResourceType, Schema
from provisor.schema.registry import ENTERPRISE_URN, USER_URN, Registry, default_registry

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
GROUP = REGISTRY.resource_type("Group")


def user(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return coerce_resource(REGISTRY, USER, {"userName": "bjensen", **body}, **kwargs)


def error(fn: Any, *args: Any, **kwargs: Any) -> ScimError:
    with pytest.raises(ScimError) as info:
        fn(*args, **kwargs)
    assert info.value.status in (400, 409)
    return info.value


def attr(schema: Schema, dotted: str) -> Attribute:
    name, _, sub = dotted.partition(".")
    found = schema.attribute(name)
    assert found is not None
    if sub:
        found = found.sub(sub)
        assert found is not None
    return found


# ---- names, unknowns, server-owned attributes ---------------------------------------------------


def test_minimal_user_is_stored_as_sent() -> None:
    assert coerce_resource(REGISTRY, USER, {"schemas": [USER_URN], "userName": "BJensen"}) == {
        "userName": "BJensen"
    }


def test_names_match_case_insensitively_at_every_level() -> None:
    doc = coerce_resource(
        REGISTRY,
        USER,
        {"USERNAME": "b", "Name": {"GIVENNAME": "Barbara"}, "EMAILS": [{"Value": "b@x", "TYPE": "work"}]},
    )
    assert doc == {
        "userName": "b",
        "name": {"givenName": "Barbara"},
        "emails": [{"value": "b@x", "type": "work"}],
    }


def test_server_owned_and_unknown_attributes_are_dropped() -> None:
    doc = user(
        {
            "id": "client-chosen",
            "meta": {"created": "2020-01-01T00:00:00Z"},
            "groups": [{"value": "g1"}],
            "favouriteColour": "blue",
            "name": {"givenName": "B", "nickname": "unknown sub"},
            "externalId": "Ext-1",
        }
    )
    assert doc == {"userName": "bjensen", "name": {"givenName": "B"}, "externalId": "Ext-1"}


def test_password_is_accepted_and_discarded() -> None:
    assert "password" not in user({"password": "s3cret!"})
    assert "password" not in user({"PassWord": {"not": "even a string"}})


def test_schemas_must_be_a_list_of_strings_but_may_be_missing() -> None:
    assert user({}) == {"userName": "bjensen"}
    assert user({"schemas": [USER_URN, ENTERPRISE_URN]}) == {"userName": "bjensen"}
    assert error(user, {"schemas": USER_URN}).scim_type == "invalidSyntax"
    assert error(user, {"schemas": [USER_URN, 3]}).scim_type == "invalidSyntax"


def test_body_must_be_an_object() -> None:
    assert error(coerce_resource, REGISTRY, USER, ["userName"]).scim_type == "invalidSyntax"


# ---- extensions -----------------------------------------------------------------------------


def test_extension_object_key_is_canonicalised() -> None:
    doc = user({ENTERPRISE_URN.upper(): {"EmployeeNumber": "701984", "manager": {"Value": "m-1"}}})
    assert doc[ENTERPRISE_URN] == {"employeeNumber": "701984", "manager": {"value": "m-1"}}


def test_urn_qualified_top_level_keys_map_into_the_extension() -> None:
    doc = user(
        {
            f"{ENTERPRISE_URN}:employeeNumber": 42,
            f"{ENTERPRISE_URN.lower()}:Department": "R&D",
            f"{ENTERPRISE_URN}:manager.value": "m-2",
            ENTERPRISE_URN: {"costCenter": "4130"},
        }
    )
    assert doc[ENTERPRISE_URN] == {
        "employeeNumber": "42",
        "department": "R&D",
        "manager": {"value": "m-2"},
        "costCenter": "4130",
    }


def test_core_urn_qualified_keys_stay_at_top_level() -> None:
    doc = coerce_resource(REGISTRY, USER, {f"{USER_URN}:userName": "b", USER_URN: {"displayName": "B"}})
    assert doc == {"userName": "b", "displayName": "B"}


def test_unknown_extension_and_readonly_extension_attributes_are_ignored() -> None:
    doc = user(
        {
            "urn:example:params:scim:schemas:extension:acme:2.0:User": {"badge": "7"},
            "urn:example:acme:badge": "7",
            ENTERPRISE_URN: {"manager": {"displayName": "read only"}},
        }
    )
    assert doc == {"userName": "bjensen"}


def test_empty_extension_is_absent_and_non_object_extension_is_rejected() -> None:
    assert ENTERPRISE_URN not in user({ENTERPRISE_URN: {"employeeNumber": ""}})
    assert ENTERPRISE_URN not in user({ENTERPRISE_URN: None})
    assert error(user, {ENTERPRISE_URN: "x"}).scim_type == "invalidValue"


# ---- scalar types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(True, True), (False, False), ("True", True), ("FALSE", False), ("true", True), (" false ", False)],
)
def test_booleans_accept_json_and_string_forms(sent: Any, stored: bool) -> None:
    assert user({"active": sent})["active"] is stored


@pytest.mark.parametrize("sent", ["yes", 1, 0, "1", {"v": True}])
def test_invalid_booleans_are_rejected(sent: Any) -> None:
    assert error(user, {"active": sent}).scim_type == "invalidValue"


def test_integers_and_decimals() -> None:
    integer = Attribute(name="n", type="integer")
    decimal = Attribute(name="d", type="decimal")
    assert coerce_value(integer, 5, "n") == 5
    assert coerce_value(integer, "-12", "n") == -12
    assert coerce_value(integer, 3.0, "n") == 3
    for bad in (True, "1.5", 2.5, "ten"):
        assert error(coerce_value, integer, bad, "n").scim_type == "invalidValue"
    assert coerce_value(decimal, 2, "d") == 2.0
    assert coerce_value(decimal, 2.75, "d") == 2.75
    assert coerce_value(decimal, "1e3", "d") == 1000.0
    for bad in (False, "abc", "nan"):
        assert error(coerce_value, decimal, bad, "d").scim_type == "invalidValue"


def test_strings_accept_numbers_but_not_structures() -> None:
    assert user({"displayName": 12})["displayName"] == "12"
    assert user({"title": 1.5})["title"] == "1.5"
    assert error(user, {"displayName": {"a": 1}}).scim_type == "invalidValue"
    assert error(user, {"displayName": ["a", "b"]}).scim_type == "invalidValue"
    assert error(user, {"userName": ["bjensen"]}).scim_type == "invalidValue"


def test_references_and_binary_are_strings() -> None:
    doc = user({"profileUrl": "https://x/b", "x509Certificates": [{"value": "MIIDQzCC"}]})
    assert doc["profileUrl"] == "https://x/b"
    assert doc["x509Certificates"] == [{"value": "MIIDQzCC"}]
    assert error(user, {"profileUrl": 5}).scim_type == "invalidValue"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2015-09-01T12:00:00Z", "2015-09-01T12:00:00.000000Z"),
        ("2015-09-01T12:00:00z", "2015-09-01T12:00:00.000000Z"),
        ("2015-09-01T14:30:00+02:30", "2015-09-01T12:00:00.000000Z"),
        ("2015-09-01T07:00:00-05:00", "2015-09-01T12:00:00.000000Z"),
        ("2015-09-01T07:00:00-0500", "2015-09-01T12:00:00.000000Z"),
        ("2015-09-01T00:30:00.5+01:00", "2015-08-31T23:30:00.500000Z"),
        ("2015-09-01T12:00:00.123456789Z", "2015-09-01T12:00:00.123456Z"),
        ("2015-09-01T12:00:00", "2015-09-01T12:00:00.000000Z"),
        ("2015-09-01 12:00Z", "2015-09-01T12:00:00.000000Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
    ],
)
def test_datetimes_are_normalised_to_fixed_width_utc(sent: str, stored: str) -> None:
    assert normalise_datetime(sent) == stored


@pytest.mark.parametrize(
    "sent",
    ["2015-09-01", "yesterday", "2015-13-01T00:00:00Z", "2015-09-01T25:00:00Z", "2015-09-01T10:00:00+24:00"],
)
def test_invalid_datetimes_are_rejected(sent: str) -> None:
    attribute = Attribute(name="when", type=DATETIME)
    err = error(coerce_value, attribute, sent, "when")
    assert err.scim_type == "invalidValue" and "when" in err.detail


def test_normalised_datetimes_sort_as_strings() -> None:
    instants = ["2015-09-01T12:00:00+01:00", "2015-09-01T11:30:00Z", "2015-09-01T11:00:00.999Z"]
    normalised = [normalise_datetime(text) for text in instants]
    assert sorted(normalised) == [normalised[0], normalised[2], normalised[1]]


# ---- complex and multi-valued ---------------------------------------------------------------


def test_complex_must_be_an_object() -> None:
    err = error(user, {"name": "Barbara Jensen"})
    assert err.scim_type == "invalidValue" and "name" in err.detail
    assert error(user, {"emails": ["b@x"]}).scim_type == "invalidValue"


def test_single_value_for_multi_valued_is_wrapped() -> None:
    assert user({"emails": {"value": "b@x"}})["emails"] == [{"value": "b@x"}]
    assert user({"entitlements": {"value": "admin"}})["entitlements"] == [{"value": "admin"}]


def test_empty_values_are_absent_never_stored() -> None:
    doc = user(
        {
            "displayName": "",
            "nickName": None,
            "name": {},
            "emails": [],
            "phoneNumbers": [{}, {"value": ""}, None],
            "addresses": [{"type": "", "locality": None}],
        }
    )
    assert doc == {"userName": "bjensen"}
    assert user({"name": {"givenName": "", "familyName": "J"}})["name"] == {"familyName": "J"}


def test_only_the_first_primary_stays_primary() -> None:
    emails = user(
        {
            "emails": [
                {"value": "a@x", "primary": "false"},
                {"value": "b@x", "primary": "True"},
                {"value": "c@x", "primary": True},
            ]
        }
    )["emails"]
    assert [email.get("primary") for email in emails] == [False, True, False]


def test_sub_attribute_types_are_coerced() -> None:
    doc = user({"addresses": [{"postalCode": 91608, "primary": "true"}]})
    assert doc["addresses"] == [{"postalCode": "91608", "primary": True}]


def test_group_members_keep_their_immutable_display() -> None:
    doc = coerce_resource(
        REGISTRY,
        GROUP,
        {"displayName": "Tour Guides", "members": [{"value": "u1", "display": "Babs", "type": "User"}]},
    )
    assert doc == {
        "displayName": "Tour Guides",
        "members": [{"value": "u1", "display": "Babs", "type": "User"}],
    }


def test_dotted_name_into_multi_valued_attribute_is_rejected() -> None:
    assert error(user, {"emails.value": "b@x"}).scim_type == "invalidValue"
    assert user({"name.givenName": "B"})["name"] == {"givenName": "B"}


def test_coerce_attribute_and_value_return_none_for_absent() -> None:
    emails = attr(USER.schema, "emails")
    assert coerce_attribute(emails, None, "emails") is None
    assert coerce_attribute(emails, [], "emails") is None
    assert coerce_attribute(emails, [{"value": ""}], "emails") is None
    assert coerce_value(emails, {}, "emails") is None
    assert coerce_value(attr(USER.schema, "displayName"), "", "displayName") is None
    assert coerce_value(emails, {"VALUE": "x", "primary": "false"}, "emails") == {
        "value": "x",
        "primary": False,
    }


def test_is_empty() -> None:
    empty: tuple[Any, ...] = (None, "", [], {})
    present: tuple[Any, ...] = (0, False, " ", [None], {"a": None})
    assert all(is_empty(value) for value in empty)
    assert not any(is_empty(value) for value in present)


# ---- required -------------------------------------------------------------------------------


def test_required_attribute_missing_names_it() -> None:
    err = error(coerce_resource, REGISTRY, USER, {"displayName": "no userName"})
    assert err.scim_type == "invalidValue" and "userName" in err.detail
    err = error(coerce_resource, REGISTRY, USER, {"userName": ""})
    assert "userName" in err.detail
    err = error(coerce_resource, REGISTRY, GROUP, {"members": []})
    assert "displayName" in err.detail


def _custom_rt(required_extension: bool = False) -> tuple[Registry, ResourceType]:
    badge = Schema.from_scim(
        {
            "id": "urn:example:acme:2.0:Badge",
            "name": "Badge",
            "attributes": [
                {"name": "number", "type": "string", "required": True},
                {"name": "issuedBy", "mutability": "immutable"},
                {
                    "name": "door",
                    "type": "complex",
                    "subAttributes": [
                        {"name": "code", "required": True},
                        {"name": "serial", "mutability": "immutable", "caseExact": True},
                        {"name": "note"},
                    ],
                },
            ],
        }
    )
    rt = ResourceType("User", "/Users", "User", USER.schema, (Extension(badge, required_extension),))
    return Registry([rt]), rt


def test_required_sub_attributes_only_when_parent_present() -> None:
    registry, rt = _custom_rt()
    urn = "urn:example:acme:2.0:Badge"
    assert coerce_resource(registry, rt, {"userName": "b"}) == {"userName": "b"}
    err = error(coerce_resource, registry, rt, {"userName": "b", urn: {"door": {"code": "1"}}})
    assert f"{urn}:number" in err.detail
    err = error(coerce_resource, registry, rt, {"userName": "b", urn: {"number": "1", "door": {"note": "x"}}})
    assert "door.code" in err.detail
    doc = coerce_resource(registry, rt, {"userName": "b", urn: {"number": "1", "door": {}}})
    assert doc[urn] == {"number": "1"}


def test_required_extension_missing() -> None:
    registry, rt = _custom_rt(required_extension=True)
    err = error(coerce_resource, registry, rt, {"userName": "b"})
    assert err.scim_type == "invalidValue" and "urn:example:acme:2.0:Badge" in err.detail


# ---- immutable on replace -------------------------------------------------------------------


def test_immutable_on_replace() -> None:
    registry, rt = _custom_rt()
    urn = "urn:example:acme:2.0:Badge"
    existing = {
        "userName": "b",
        urn: {"number": "1", "issuedBy": "HQ", "door": {"code": "1", "serial": "S1"}},
    }

    def put(ext: dict[str, Any]) -> dict[str, Any]:
        return coerce_resource(registry, rt, {"userName": "b", urn: ext}, existing=existing)

    # Same value (case-insensitively, as the attribute is not caseExact) is fine.
    assert put({"number": "2", "issuedBy": "hq"})[urn]["issuedBy"] == "hq"
    # Omitted: the stored value is carried over, it cannot be cleared.
    assert put({"number": "2"})[urn] == {"number": "2", "issuedBy": "HQ", "door": {"serial": "S1"}}
    err = error(put, {"number": "2", "issuedBy": "Branch"})
    assert err.scim_type == "mutability" and "issuedBy" in err.detail
    err = error(put, {"number": "2", "door": {"code": "1", "serial": "s1"}})
    assert err.scim_type == "mutability" and "door.serial" in err.detail
    # On POST there is nothing to compare with.
    assert coerce_resource(registry, rt, {"userName": "b", urn: {"number": "1", "issuedBy": "X"}})


def test_immutable_multi_valued_sub_attributes_allow_membership_changes() -> None:
    existing = {"displayName": "G", "members": [{"value": "u1"}]}
    doc = coerce_resource(
        REGISTRY, GROUP, {"displayName": "G", "members": [{"value": "u2"}]}, existing=existing
    )
    assert doc["members"] == [{"value": "u2"}]


def test_mutable_attributes_may_change_on_replace() -> None:
    existing = user({"displayName": "Old", "active": True})
    assert user({"displayName": "New"}, existing=existing) == {"userName": "bjensen", "displayName": "New"}
