"""One table per normaliser, with the request bodies Okta and Entra ID really send
(../shared/conformance/README.md), asserting the resulting document or MemberDelta."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from provisor.errors import ScimError
from provisor.patch import (
    PATCH_OP_URN,
    MemberDelta,
    NormaliseContext,
    PatchOperation,
    PatchOptions,
    PatchResult,
    normalise,
    patch_document,
)
from provisor.patch.normalisers import op_case
from provisor.schema.registry import ENTERPRISE_URN, default_registry

REGISTRY = default_registry()
USER_ID = "2819c223-7f76-453a-919d-413861904646"
GROUP_ID = "e9e30dba-f08f-4109-8486-d5c6a331660a"
CTX = NormaliseContext(REGISTRY, REGISTRY.resource_type("User"), USER_ID)

USER = {
    "userName": "bjensen@example.com",
    "displayName": "Babs",
    "active": True,
    "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
    "roles": [{"value": "Reader", "primary": True}],
    ENTERPRISE_URN: {"employeeNumber": "1", "manager": {"value": "old-boss"}},
}
GROUP = {"displayName": "Tour Guides"}


def patch(doc: dict[str, Any], *ops: dict[str, Any], rt: str = "User", **kw: Any) -> PatchResult:
    resource_id = USER_ID if rt == "User" else GROUP_ID
    body = {"schemas": [PATCH_OP_URN], "Operations": list(ops)}
    return patch_document(REGISTRY, REGISTRY.resource_type(rt), doc, body, resource_id=resource_id, **kw)


def user_after(*ops: dict[str, Any]) -> dict[str, Any]:
    before = copy.deepcopy(USER)
    result = patch(USER, *ops)
    assert before == USER
    return result.doc


def delta_after(*ops: dict[str, Any], **kw: Any) -> MemberDelta | None:
    result = patch(GROUP, *ops, rt="Group", **kw)
    assert result.doc == GROUP
    return result.members


# ---- op_case ----------------------------------------------------------------------------------

OP_CASE = [
    ("Add", "add"),
    ("Replace", "replace"),
    ("Remove", "remove"),
    ("ADD", "add"),
    ("rEpLaCe", "replace"),
    ("move", "move"),  # not an op: left for the engine to reject with invalidSyntax
]


@pytest.mark.parametrize(("sent", "expected"), OP_CASE)
def test_op_case(sent: str, expected: str) -> None:
    assert op_case(PatchOperation(sent, "title", "x"), CTX)[0].op == expected


def test_op_case_end_to_end_and_strict_rejects_it() -> None:
    assert user_after({"op": "Replace", "path": "title", "value": "T"})["title"] == "T"
    with pytest.raises(ScimError) as info:
        patch(USER, {"op": "Replace", "path": "title", "value": "T"}, options=PatchOptions(strict=True))
    assert info.value.scim_type == "invalidSyntax"


# ---- string_booleans ----------------------------------------------------------------------

STRING_BOOLEANS = [
    ({"op": "Replace", "path": "active", "value": "False"}, lambda d: d["active"] is False),
    ({"op": "replace", "value": {"active": "FALSE"}}, lambda d: d["active"] is False),
    ({"op": "replace", "path": "active", "value": "true"}, lambda d: d["active"] is True),
    (
        {"op": "Add", "path": "roles", "value": [{"value": "Admin", "primary": "True"}]},
        lambda d: d["roles"] == [{"value": "Reader", "primary": False}, {"value": "Admin", "primary": True}],
    ),
    (
        {"op": "Add", "path": "emails", "value": [{"value": "h@x.org", "type": "home", "primary": "True"}]},
        lambda d: [e.get("primary") for e in d["emails"]] == [False, True],
    ),
    (
        {"op": "Replace", "path": 'emails[type eq "work"].primary', "value": "False"},
        lambda d: d["emails"][0]["primary"] is False,
    ),
    (
        {"op": "Replace", "path": 'roles[value eq "Reader"]', "value": {"primary": "False"}},
        lambda d: d["roles"] == [{"value": "Reader", "primary": False}],
    ),
]


@pytest.mark.parametrize(("op", "check"), STRING_BOOLEANS)
def test_string_booleans(op: dict[str, Any], check: Any) -> None:
    assert check(user_after(op))


def test_string_booleans_make_value_filters_match() -> None:
    ops = normalise([PatchOperation("Remove", "emails", [{"type": "work", "primary": "True"}])], CTX)
    assert ops == (PatchOperation("remove", 'emails[(type eq "work" and primary eq true)]'),)


# ---- pathless_keys --------------------------------------------------------------------------

PATHLESS_KEYS = [
    # Entra: dotted and URN-qualified keys in a path-less replace
    (
        {
            "op": "Replace",
            "value": {
                "name.givenName": "Barbara",
                "name.familyName": "Jensen",
                f"{ENTERPRISE_URN}:employeeNumber": "701984",
            },
        },
        {"name": {"givenName": "Barbara", "familyName": "Jensen"}, "employeeNumber": "701984"},
    ),
    # URN-qualified manager
    ({"op": "replace", "value": {f"{ENTERPRISE_URN}:manager": "boss"}}, {"manager": {"value": "boss"}}),
    # plain and extension-object keys
    (
        {"op": "add", "value": {"title": "Guide", ENTERPRISE_URN: {"department": "Tours"}}},
        {"title": "Guide", "department": "Tours"},
    ),
    # Okta deactivation
    ({"op": "replace", "value": {"active": False}}, {"active": False}),
    # unknown keys and nulls ignored, name merges
    (
        {"op": "replace", "value": {"favouriteColour": "blue", "nickName": None, "name": {"givenName": "B"}}},
        {"name": {"givenName": "B"}},
    ),
]


@pytest.mark.parametrize(("op", "expected"), PATHLESS_KEYS)
def test_pathless_keys(op: dict[str, Any], expected: dict[str, Any]) -> None:
    doc = user_after(op)
    for key, value in expected.items():
        section = doc[ENTERPRISE_URN] if key in ("employeeNumber", "manager", "department") else doc
        assert section[key] == value
    assert "favouriteColour" not in doc and "nickName" not in doc


def test_pathless_keys_splits_into_one_op_per_key() -> None:
    ops = normalise(
        [PatchOperation("Replace", None, {"name.givenName": "B", f"{ENTERPRISE_URN}:employeeNumber": "7"})],
        CTX,
    )
    assert ops == (
        PatchOperation("replace", "name.givenName", "B"),
        PatchOperation("replace", f"{ENTERPRISE_URN}:employeeNumber", "7"),
    )


# ---- okta_pathless_id -------------------------------------------------------------------------


def test_okta_group_rename_with_own_id() -> None:
    result = patch(GROUP, {"op": "replace", "value": {"id": GROUP_ID, "displayName": "Guides"}}, rt="Group")
    assert result.doc == {"displayName": "Guides"} and result.members is None


@pytest.mark.parametrize(
    "extra",
    [
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"]},
        {"meta": {"resourceType": "Group"}},
        {"id": GROUP_ID},
    ],
)
def test_okta_pathless_echoed_keys_dropped(extra: dict[str, Any]) -> None:
    result = patch(GROUP, {"op": "replace", "value": {**extra, "displayName": "Guides"}}, rt="Group")
    assert result.doc == {"displayName": "Guides"}


def test_okta_pathless_other_id_is_mutability() -> None:
    with pytest.raises(ScimError) as info:
        patch(GROUP, {"op": "replace", "value": {"id": "someone-else", "displayName": "x"}}, rt="Group")
    assert (info.value.status, info.value.scim_type) == (400, "mutability")


# ---- remove_by_value_array --------------------------------------------------------------------

REMOVE_BY_VALUE = [
    ({"op": "Remove", "path": "members", "value": [{"value": "id1"}]}, {"id1"}),
    ({"op": "remove", "path": "members", "value": [{"value": "id1"}, {"value": "id2"}]}, {"id1", "id2"}),
    ({"op": "Remove", "path": "members", "value": {"value": 'we"ird'}}, {'we"ird'}),
    ({"op": "remove", "path": 'members[value eq "id3"]'}, {"id3"}),  # Okta's form, untouched
]


@pytest.mark.parametrize(("op", "ids"), REMOVE_BY_VALUE)
def test_remove_by_value_array(op: dict[str, Any], ids: set[str]) -> None:
    delta = delta_after(op)
    assert delta is not None and delta.remove_ids == ids
    assert not delta.remove_all and delta.replace_all is None and not delta.add


@pytest.mark.parametrize("value", [[], [{}], [{"value": ""}], [{"display": None}]])
def test_remove_by_value_array_never_removes_all(value: Any) -> None:
    delta = delta_after({"op": "Remove", "path": "members", "value": value})
    assert delta is None or (not delta.remove_all and delta.replace_all is None)


def test_remove_with_value_in_strict_mode_is_rejected_not_remove_all() -> None:
    with pytest.raises(ScimError) as info:
        delta_after(
            {"op": "remove", "path": "members", "value": [{"value": "id1"}]},
            options=PatchOptions(strict=True),
        )
    assert info.value.scim_type == "invalidValue"


def test_remove_by_value_array_on_user_attribute() -> None:
    doc = user_after({"op": "Remove", "path": "emails", "value": [{"value": "bjensen@example.com"}]})
    assert "emails" not in doc


# ---- group membership as Okta and Entra send it ---------------------------------------------

MEMBERSHIP = [
    (
        {"op": "add", "path": "members", "value": [{"value": "u1", "display": "Babs"}]},
        MemberDelta(add=[{"value": "u1", "display": "Babs"}]),  # display is kept (immutable)
    ),
    (
        {
            "op": "Add",
            "path": "members",
            "value": [{"$ref": None, "value": "u1"}, {"$ref": None, "value": "u2"}],
        },
        MemberDelta(add=[{"value": "u1"}, {"value": "u2"}]),
    ),
    (
        {"op": "replace", "path": "members", "value": [{"value": "u3", "display": "X"}]},
        MemberDelta(replace_all=[{"value": "u3", "display": "X"}]),
    ),
    ({"op": "add", "value": {"members": [{"value": "u4"}]}}, MemberDelta(add=[{"value": "u4"}])),
]


@pytest.mark.parametrize(("op", "expected"), MEMBERSHIP)
def test_membership(op: dict[str, Any], expected: MemberDelta) -> None:
    assert delta_after(op) == expected


def test_membership_ops_fold_in_order() -> None:
    delta = delta_after(
        {"op": "add", "path": "members", "value": [{"value": "a"}, {"value": "b"}]},
        {"op": "remove", "path": 'members[value eq "a"]'},
        {"op": "remove", "path": 'members[value eq "c"]'},
    )
    # "a" may have been a member before this request, so it is still removed from the table
    assert delta == MemberDelta(add=[{"value": "b"}], remove_ids={"a", "c"})


# ---- manager_forms ----------------------------------------------------------------------------

MANAGER_SET = [
    {"op": "Add", "path": "manager", "value": [{"$ref": "https://x/Users/boss", "value": "boss"}]},
    {"op": "Replace", "path": f"{ENTERPRISE_URN}:manager", "value": {"value": "boss"}},
    {"op": "Replace", "path": f"{ENTERPRISE_URN}:manager", "value": "boss"},
    {"op": "replace", "path": "manager", "value": "boss"},
]


@pytest.mark.parametrize("op", MANAGER_SET)
def test_manager_set(op: dict[str, Any]) -> None:
    assert user_after(op)[ENTERPRISE_URN]["manager"]["value"] == "boss"


MANAGER_REMOVE = [
    {"op": "Replace", "path": f"{ENTERPRISE_URN}:manager", "value": ""},
    {"op": "Replace", "path": f"{ENTERPRISE_URN}:manager", "value": {"value": ""}},
    {"op": "Replace", "path": f"{ENTERPRISE_URN}:manager", "value": None},
    {"op": "Add", "path": "manager", "value": []},
    {"op": "Remove", "path": "manager"},
    {"op": "Replace", "value": {f"{ENTERPRISE_URN}:manager": None}},
]


@pytest.mark.parametrize("op", MANAGER_REMOVE)
def test_manager_remove(op: dict[str, Any]) -> None:
    assert "manager" not in user_after(op)[ENTERPRISE_URN]


# ---- json_string_values -----------------------------------------------------------------------

ROLE_JSON = '{"id":"7a3e1a7f-9ac0-4c2c-a1b1-6f0b2f3c8f11","value":"Admin","displayName":"Admin"}'
JSON_STRING_VALUES = [
    (
        {"op": "Add", "path": "roles", "value": [{"value": ROLE_JSON}]},
        [{"value": "Reader", "primary": True}, {"value": "Admin", "display": "Admin"}],
    ),
    (
        {"op": "replace", "path": "roles", "value": [{"value": ROLE_JSON}]},
        [{"value": "Admin", "display": "Admin"}],
    ),
    (
        {"op": "Replace", "path": "roles", "value": [{"value": ROLE_JSON, "primary": "True"}]},
        [{"value": "Admin", "display": "Admin", "primary": True}],
    ),
    (
        {"op": "Add", "path": "roles", "value": [{"value": "{not json"}]},
        [{"value": "Reader", "primary": True}, {"value": "{not json"}],
    ),
]


@pytest.mark.parametrize(("op", "roles"), JSON_STRING_VALUES)
def test_json_string_values(op: dict[str, Any], roles: list[dict[str, Any]]) -> None:
    assert user_after(op)["roles"] == roles


def test_json_string_values_then_remove_by_value() -> None:
    doc = user_after(
        {"op": "Add", "path": "roles", "value": [{"value": ROLE_JSON}]},
        {"op": "Remove", "path": "roles", "value": [{"value": ROLE_JSON}]},
    )
    assert doc["roles"] == [{"value": "Reader", "primary": True}]


# ---- Entra value-path targets ---------------------------------------------------------------

VALUE_PATHS = [
    (
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "new@example.com"},
        "emails",
        [{"value": "new@example.com", "type": "work", "primary": True}],
    ),
    (
        {"op": "Replace", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
        "addresses",
        [{"type": "work", "locality": "Redmond"}],
    ),
    (
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555"},
        "phoneNumbers",
        [{"type": "mobile", "value": "+1 555"}],
    ),
]


@pytest.mark.parametrize(("op", "key", "expected"), VALUE_PATHS)
def test_entra_value_paths(op: dict[str, Any], key: str, expected: list[dict[str, Any]]) -> None:
    assert user_after(op)[key] == expected


def test_strict_mode_skips_the_chain() -> None:
    ops = [PatchOperation("Add", None, {"name.givenName": "B"})]
    assert normalise(ops, CTX, strict=True) == tuple(ops)


# ---- bare_values (Microsoft's reference collection) ------------------------------------------

BARE_VALUES = [
    ({"op": "add", "path": "members", "value": "string id 1"}, [{"value": "string id 1"}]),
    ({"op": "Add", "path": "members", "value": ["a", {"value": "b"}]}, [{"value": "a"}, {"value": "b"}]),
    ({"op": "replace", "path": "members", "value": ["c"]}, None),
]


@pytest.mark.parametrize(("op", "added"), BARE_VALUES)
def test_bare_values(op: dict[str, Any], added: list[dict[str, Any]] | None) -> None:
    delta = delta_after(op)
    assert delta is not None
    if added is None:
        assert delta.replace_all == [{"value": "c"}]
    else:
        assert delta.add == added


def test_bare_values_leave_simple_and_filtered_targets_alone() -> None:
    assert user_after({"op": "add", "path": "emails", "value": "x@example.com"})["emails"][-1] == {
        "value": "x@example.com"
    }
    assert user_after({"op": "replace", "path": 'emails[type eq "work"].value', "value": "y@example.com"})[
        "emails"
    ] == [{"value": "y@example.com", "type": "work", "primary": True}]


# ---- display_name_alias (Microsoft's reference collection) -----------------------------------

DISPLAY_ALIAS = [
    ({"displayName": "new User", "value": "id4"}, {"value": "id4", "display": "new User"}),
    (
        {"DisplayName": "x", "value": "id5", "display": "kept"},
        {"DisplayName": "x", "value": "id5", "display": "kept"},
    ),
    ({"value": "id6"}, {"value": "id6"}),
]


@pytest.mark.parametrize(("element", "expected"), DISPLAY_ALIAS)
def test_display_name_alias(element: dict[str, Any], expected: dict[str, Any]) -> None:
    ops = normalise(
        [PatchOperation("add", "members", [element])],
        NormaliseContext(REGISTRY, REGISTRY.resource_type("Group"), GROUP_ID),
    )
    assert ops == (PatchOperation("add", "members", [expected]),)
