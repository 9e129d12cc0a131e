"""RFC 7644 section 3.5.2: every example of the section, adapted to the stored-document engine,
plus each error `scimType` the section prescribes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from provisor.errors import ScimError
from provisor.patch import (
    PATCH_OP_URN,
    PatchOperation,
    PatchOptions,
    PatchResult,
    apply_patch,
    parse_patch_request,
    patch_document,
)
from provisor.schema.registry import ENTERPRISE_URN, Registry, default_registry

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
GROUP = REGISTRY.resource_type("Group")
BABS = "2819c223-7f76-453a-919d-413861904646"
JAMES = "08e1d05d-121c-4561-8b96-473d93df9210"
STRICT = PatchOptions(strict=True)


def body(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP_URN], "Operations": list(ops)}


def run(doc: dict[str, Any], *ops: dict[str, Any], rt: str = "User", **kw: Any) -> PatchResult:
    """Pure RFC mode unless the test says otherwise: these are the RFC's own examples."""
    kw.setdefault("options", STRICT)
    return patch_document(REGISTRY, REGISTRY.resource_type(rt), doc, body(*ops), resource_id="r1", **kw)


def fails(
    scim_type: str | None,
    doc: dict[str, Any],
    *ops: dict[str, Any],
    status: int = 400,
    rt: str = "User",
    **kw: Any,
) -> ScimError:
    before = copy.deepcopy(doc)
    with pytest.raises(ScimError) as info:
        run(doc, *ops, rt=rt, **kw)
    assert (info.value.status, info.value.scim_type) == (status, scim_type)
    assert doc == before
    return info.value


@pytest.fixture
def user() -> dict[str, Any]:
    return {
        "userName": "bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": True},
            {"value": "babs@jensen.org", "type": "home"},
        ],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"},
        ],
        ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
    }


GROUP_DOC = {"displayName": "Tour Guides"}


# ---- 3.5.2.1 add --------------------------------------------------------------------------


def test_add_member_to_group() -> None:
    member = {"display": "Babs Jensen", "$ref": f"https://example.com/v2/Users/{BABS}", "value": BABS}
    result = run(GROUP_DOC, {"op": "add", "path": "members", "value": [member]}, rt="Group")
    assert result.doc == GROUP_DOC  # members are rows, never in the document
    assert result.members is not None and result.changed
    assert [m["value"] for m in result.members.add] == [BABS]
    assert result.members.add[0]["display"] == "Babs Jensen"  # immutable (RFC 7643 2.4): kept as sent
    assert result.members.replace_all is None and not result.members.remove_all


def test_add_pathless_set_of_attributes(user: dict[str, Any]) -> None:
    result = run(
        user,
        {
            "op": "add",
            "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickname": "Babs"},
        },
    )
    assert result.doc["nickName"] == "Babs"  # "nickname" in the RFC example: names are case-insensitive
    assert result.doc["emails"] == user["emails"]  # already there: "no changes SHOULD be made"


def test_add_to_multi_valued_appends(user: dict[str, Any]) -> None:
    result = run(user, {"op": "add", "path": "emails", "value": [{"value": "b@x.org", "type": "other"}]})
    assert result.doc["emails"][-1] == {"value": "b@x.org", "type": "other"}
    assert len(result.doc["emails"]) == 3


def test_add_to_complex_merges_sub_attributes(user: dict[str, Any]) -> None:
    result = run(user, {"op": "add", "path": "name", "value": {"middleName": "J"}})
    assert result.doc["name"] == {"givenName": "Barbara", "familyName": "Jensen", "middleName": "J"}


def test_add_to_single_valued_replaces(user: dict[str, Any]) -> None:
    result = run(user, {"op": "add", "path": "userName", "value": "babs"})
    assert result.doc["userName"] == "babs"


def test_add_existing_value_is_no_change(user: dict[str, Any]) -> None:
    result = run(user, {"op": "add", "path": "name.givenName", "value": "Barbara"})
    assert not result.changed and result.doc == user


def test_add_primary_demotes_the_others(user: dict[str, Any]) -> None:
    result = run(user, {"op": "add", "path": "emails", "value": {"value": "n@x.org", "primary": True}})
    assert [e.get("primary") for e in result.doc["emails"]] == [False, None, True]


# ---- 3.5.2.2 remove -----------------------------------------------------------------------


def test_remove_all_members() -> None:
    result = run(GROUP_DOC, {"op": "remove", "path": "members"}, rt="Group")
    assert result.members is not None and result.members.remove_all


def test_remove_one_member() -> None:
    result = run(GROUP_DOC, {"op": "remove", "path": f'members[value eq "{BABS}"]'}, rt="Group")
    assert result.members is not None
    assert result.members.remove_ids == {BABS} and not result.members.remove_all


def test_remove_members_by_or_chain_needs_no_member_list() -> None:
    path = f'members[value eq "{BABS}" or value eq "{JAMES}"]'
    result = run(GROUP_DOC, {"op": "remove", "path": path}, rt="Group")  # no load_members given
    assert result.members is not None and result.members.remove_ids == {BABS, JAMES}


def test_remove_members_by_other_filter_loads_members() -> None:
    stored = [{"value": BABS, "type": "User"}, {"value": JAMES, "type": "Group"}]
    result = run(
        GROUP_DOC,
        {"op": "remove", "path": 'members[type eq "Group"]'},
        rt="Group",
        load_members=lambda: stored,
    )
    assert result.members is not None and result.members.remove_ids == {JAMES}


def test_remove_emails_matching_complex_filter(user: dict[str, Any]) -> None:
    result = run(user, {"op": "remove", "path": 'emails[type eq "work" and value ew "example.com"]'})
    assert result.doc["emails"] == [{"value": "babs@jensen.org", "type": "home"}]


def test_remove_last_value_unassigns_attribute(user: dict[str, Any]) -> None:
    result = run(
        user,
        {"op": "remove", "path": 'emails[type eq "work"]'},
        {"op": "remove", "path": 'emails[type eq "home"]'},
    )
    assert "emails" not in result.doc


def test_remove_then_add_members_in_one_request() -> None:
    result = run(
        GROUP_DOC,
        {"op": "remove", "path": "members"},
        {
            "op": "add",
            "path": "members",
            "value": [
                {"display": "Babs Jensen", "$ref": f"https://example.com/v2/Users/{BABS}", "value": BABS},
                {"display": "James Smith", "$ref": f"https://example.com/v2/Users/{JAMES}", "value": JAMES},
            ],
        },
        rt="Group",
    )
    delta = result.members
    assert delta is not None and delta.remove_all
    assert [m["value"] for m in delta.add] == [BABS, JAMES]


def test_remove_single_valued_and_sub_attribute(user: dict[str, Any]) -> None:
    result = run(
        user,
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": f"{ENTERPRISE_URN}:employeeNumber"},
    )
    assert result.doc["name"] == {"familyName": "Jensen"}
    assert ENTERPRISE_URN in result.doc and "employeeNumber" not in result.doc[ENTERPRISE_URN]


def test_remove_sub_attribute_of_matching_elements(user: dict[str, Any]) -> None:
    result = run(user, {"op": "remove", "path": 'addresses[type eq "work"].locality'})
    assert result.doc["addresses"][0] == {"type": "work", "streetAddress": "100 Universal City Plaza"}
    assert result.doc["addresses"][1]["locality"] == "Hollywood"


def test_remove_empties_extension_section(user: dict[str, Any]) -> None:
    result = run(
        user,
        {"op": "remove", "path": f"{ENTERPRISE_URN}:employeeNumber"},
        {"op": "remove", "path": f"{ENTERPRISE_URN}:manager"},
    )
    assert ENTERPRISE_URN not in result.doc


# ---- 3.5.2.3 replace ----------------------------------------------------------------------


def test_replace_all_members() -> None:
    result = run(
        GROUP_DOC,
        {
            "op": "replace",
            "path": "members",
            "value": [
                {"display": "Babs Jensen", "$ref": f"https://example.com/v2/Users/{BABS}", "value": BABS},
                {"display": "James Smith", "$ref": f"https://example.com/v2/Users/{JAMES}", "value": JAMES},
            ],
        },
        rt="Group",
    )
    assert result.members is not None and result.members.replace_all is not None
    assert [m["value"] for m in result.members.replace_all] == [BABS, JAMES]


def test_replace_work_address(user: dict[str, Any]) -> None:
    value = {
        "type": "work",
        "streetAddress": "911 Universal City Plaza",
        "locality": "Hollywood",
        "region": "CA",
        "postalCode": "91608",
        "country": "US",
        "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
        "primary": True,
    }
    result = run(user, {"op": "replace", "path": 'addresses[type eq "work"]', "value": value})
    assert result.doc["addresses"][0] == value
    assert result.doc["addresses"][1] == user["addresses"][1]


def test_replace_street_address_of_work_address(user: dict[str, Any]) -> None:
    result = run(
        user,
        {"op": "replace", "path": 'addresses[type eq "work"].streetAddress', "value": "1010 Broadway Ave"},
    )
    assert result.doc["addresses"][0]["streetAddress"] == "1010 Broadway Ave"
    assert result.doc["addresses"][0]["locality"] == "Hollywood"


def test_replace_pathless(user: dict[str, Any]) -> None:
    emails = [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ]
    result = run(
        {**user, "emails": [{"value": "old@x.org"}]},
        {"op": "replace", "value": {"emails": emails, "nickname": "Babs"}},
    )
    assert result.doc["emails"] == emails and result.doc["nickName"] == "Babs"


def test_replace_complex_leaves_other_sub_attributes(user: dict[str, Any]) -> None:
    result = run(user, {"op": "replace", "path": "name", "value": {"givenName": "Babs"}})
    assert result.doc["name"] == {"givenName": "Babs", "familyName": "Jensen"}


def test_replace_missing_attribute_is_add(user: dict[str, Any]) -> None:
    result = run(user, {"op": "replace", "path": "title", "value": "Tour Guide"})
    assert result.doc["title"] == "Tour Guide"


def test_replace_sub_attribute_of_all_elements_without_filter(user: dict[str, Any]) -> None:
    result = run(user, {"op": "replace", "path": "addresses.locality", "value": "Burbank"})
    assert [a["locality"] for a in result.doc["addresses"]] == ["Burbank", "Burbank"]


def test_replace_value_path_creates_missing_element_by_default(user: dict[str, Any]) -> None:
    result = run(
        user,
        {"op": "replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "555"},
        options=PatchOptions(),
    )
    assert result.doc["phoneNumbers"] == [{"type": "mobile", "value": "555"}]


def test_replace_primary_true_wins(user: dict[str, Any]) -> None:
    result = run(user, {"op": "replace", "path": 'emails[type eq "home"].primary', "value": True})
    assert [e.get("primary") for e in result.doc["emails"]] == [False, True]


def test_replace_with_string_boolean_and_datetime_coerced() -> None:
    result = run({"userName": "x"}, {"op": "replace", "path": "active", "value": "false"})
    assert result.doc["active"] is False


def test_unchanged_result_reports_not_changed(user: dict[str, Any]) -> None:
    result = run(
        user, {"op": "replace", "path": "userName", "value": "bjensen"}, {"op": "remove", "path": "nickName"}
    )
    assert not result.changed and result.members is None


def test_extension_whole_section_as_path(user: dict[str, Any]) -> None:
    result = run(user, {"op": "replace", "path": ENTERPRISE_URN, "value": {"department": "Tours"}})
    assert result.doc[ENTERPRISE_URN]["department"] == "Tours"


def test_input_document_is_never_modified(user: dict[str, Any]) -> None:
    before = copy.deepcopy(user)
    run(user, {"op": "remove", "path": "emails"}, {"op": "add", "path": "name.givenName", "value": "B"})
    assert user == before


# ---- request envelope (3.5.2 and 3.12) -----------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "x",
        {"Operations": [{"op": "add", "path": "title", "value": "x"}]},
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [{"op": "remove"}]},
        {"schemas": [PATCH_OP_URN]},
        {"schemas": [PATCH_OP_URN], "Operations": []},
        {"schemas": [PATCH_OP_URN], "Operations": {"op": "add"}},
        {"schemas": [PATCH_OP_URN], "Operations": ["add"]},
        {"schemas": [PATCH_OP_URN], "Operations": [{"path": "title"}]},
        {"schemas": [PATCH_OP_URN], "Operations": [{"op": "add", "path": 7}]},
    ],
)
def test_malformed_envelope_is_invalid_syntax(bad: Any) -> None:
    with pytest.raises(ScimError) as info:
        parse_patch_request(bad)
    assert (info.value.status, info.value.scim_type) == (400, "invalidSyntax")


def test_envelope_names_are_case_insensitive() -> None:
    request = parse_patch_request(
        {"SCHEMAS": [PATCH_OP_URN.upper()], "operations": [{"OP": "add", "Path": "title", "VALUE": "x"}]}
    )
    assert request.operations == (PatchOperation("add", "title", "x"),)


def test_too_many_operations_is_413() -> None:
    ops = [{"op": "add", "path": "title", "value": str(i)} for i in range(4)]
    with pytest.raises(ScimError) as info:
        parse_patch_request(body(*ops), max_operations=3)
    assert info.value.status == 413
    assert len(parse_patch_request(body(*ops), max_operations=4).operations) == 4


def test_unknown_op_is_invalid_syntax(user: dict[str, Any]) -> None:
    fails("invalidSyntax", user, {"op": "move", "path": "title", "value": "x"})
    fails("invalidSyntax", user, {"op": "Add", "path": "title", "value": "x"})  # strict: no op_case


# ---- error scimTypes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "nope",
        "name.nope",
        'emails[nope eq "x"]',
        "emails[type eq",
        "a b",
        "urn:example:unknown:2.0:User:x",
        'name[givenName eq "x"]',
    ],
)
def test_invalid_path(user: dict[str, Any], path: str) -> None:
    fails("invalidPath", user, {"op": "replace", "path": path, "value": "x"})


def test_unknown_pathless_key_strict_vs_lenient(user: dict[str, Any]) -> None:
    fails("invalidPath", user, {"op": "replace", "value": {"nope": 1}})
    result = run(user, {"op": "replace", "value": {"nope": 1, "title": "T"}}, options=PatchOptions())
    assert result.doc["title"] == "T"


def test_remove_without_path_is_no_target(user: dict[str, Any]) -> None:
    fails("noTarget", user, {"op": "remove"})


def test_replace_value_path_without_match_is_no_target_when_not_creating(user: dict[str, Any]) -> None:
    options = PatchOptions(strict=True, create_missing_on_value_path=False)
    fails(
        "noTarget",
        user,
        {"op": "replace", "path": 'emails[type eq "other"].value', "value": "x"},
        options=options,
    )


def test_value_path_not_creatable_from_filter_is_no_target(user: dict[str, Any]) -> None:
    fails(
        "noTarget", user, {"op": "replace", "path": 'emails[type eq "a" or type eq "b"].value', "value": "x"}
    )


def test_strict_remove_matching_nothing_is_no_target(user: dict[str, Any]) -> None:
    fails("noTarget", user, {"op": "remove", "path": 'emails[type eq "other"]'})
    result = run(user, {"op": "remove", "path": 'emails[type eq "other"]'}, options=PatchOptions())
    assert not result.changed


@pytest.mark.parametrize(
    "op",
    [
        {"op": "replace", "path": "id", "value": "other"},
        {"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"},
        {"op": "add", "path": "groups", "value": [{"value": "g1"}]},
        {"op": "replace", "path": f"{ENTERPRISE_URN}:manager.displayName", "value": "Boss"},
        {"op": "remove", "path": "userName"},
        {"op": "replace", "path": "userName", "value": ""},
        {"op": "replace", "value": {"id": "other"}},
    ],
)
def test_mutability(user: dict[str, Any], op: dict[str, Any]) -> None:
    fails("mutability", user, op)


def test_removing_required_group_display_name_is_mutability() -> None:
    fails("mutability", GROUP_DOC, {"op": "remove", "path": "displayName"}, rt="Group")


def test_member_sub_attributes_are_not_editable() -> None:
    fails(
        "mutability",
        GROUP_DOC,
        {"op": "replace", "path": f'members[value eq "{BABS}"].display', "value": "x"},
        rt="Group",
    )


@pytest.fixture
def immutable_registry(tmp_path: Path) -> Registry:
    schema = {
        "id": "urn:example:scim:schemas:extension:badge:2.0:User",
        "name": "Badge",
        "attributes": [{"name": "badge", "type": "string", "mutability": "immutable"}],
    }
    path = tmp_path / "badge.json"
    path.write_text(json.dumps(schema))
    return default_registry([path])


def test_immutable_add_only_when_absent(immutable_registry: Registry) -> None:
    rt = immutable_registry.resource_type("User")
    urn = "urn:example:scim:schemas:extension:badge:2.0:User"
    first = apply_patch(
        immutable_registry,
        rt,
        {"userName": "x"},
        [PatchOperation("add", f"{urn}:badge", "B1")],
        resource_id="r1",
    )
    assert first.doc[urn] == {"badge": "B1"}
    for op in ("add", "replace"):
        with pytest.raises(ScimError) as info:
            apply_patch(
                immutable_registry,
                rt,
                first.doc,
                [PatchOperation(op, f"{urn}:badge", "B2")],
                resource_id="r1",
            )
        assert info.value.scim_type == "mutability"
    with pytest.raises(ScimError) as info:
        apply_patch(
            immutable_registry, rt, first.doc, [PatchOperation("remove", f"{urn}:badge")], resource_id="r1"
        )
    assert info.value.scim_type == "mutability"


@pytest.mark.parametrize(
    "op",
    [
        {"op": "add", "path": "title"},
        {"op": "replace", "path": "active", "value": "maybe"},
        {"op": "replace", "path": "name", "value": "Babs"},
        {"op": "add", "path": "emails", "value": [["nested"]]},
        {"op": "replace", "value": "not an object"},
        {"op": "remove", "path": "emails", "value": [{"value": "bjensen@example.com"}]},
    ],
)
def test_invalid_value(user: dict[str, Any], op: dict[str, Any]) -> None:
    fails("invalidValue", user, op)


def test_member_without_value_is_invalid_value() -> None:
    fails(
        "invalidValue", GROUP_DOC, {"op": "add", "path": "members", "value": [{"display": "x"}]}, rt="Group"
    )


def test_failure_midway_is_atomic(user: dict[str, Any]) -> None:
    fails(
        "invalidPath",
        user,
        {"op": "replace", "path": "title", "value": "T"},
        {"op": "remove", "path": "emails"},
        {"op": "replace", "path": "nope", "value": 1},
    )
