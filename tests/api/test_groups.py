"""Groups over HTTP on both databases: membership rows, nesting, derived `groups`, IdP PATCH forms."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scim_client import GROUP_URN, Scim, assert_error


def member_ids(scim: Scim, group_id: str) -> list[str]:
    body = scim.get(f"/Groups/{group_id}").json()
    return sorted(m["value"] for m in body.get("members", []))


def test_create_with_members_returns_ref_display_and_type(scim: Scim) -> None:
    alice = scim.create_user("alice", displayName="Alice A")
    bob = scim.create_user("bob")
    response = scim.post(
        "/Groups",
        {
            "schemas": [GROUP_URN],
            "displayName": "Engineering",
            "members": [{"value": alice["id"]}, {"value": bob["id"]}, {"value": alice["id"]}],
        },
    )
    assert response.status_code == 201, response.text
    group = response.json()
    assert response.headers["location"].endswith(f"/Groups/{group['id']}")
    by_id = {m["value"]: m for m in group["members"]}
    assert len(group["members"]) == 2  # duplicates collapsed
    assert by_id[alice["id"]] == {
        "value": alice["id"],
        "$ref": f"http://testserver/scim/v2/Users/{alice['id']}",
        "type": "User",
        "display": "Alice A",
    }
    assert by_id[bob["id"]]["display"] == "bob"


def test_members_optional_and_display_name_required(scim: Scim) -> None:
    group = scim.create_group("Empty")
    assert "members" not in group
    assert_error(scim.post("/Groups", {"schemas": [GROUP_URN], "members": []}), 400, "invalidValue")


def test_duplicate_display_name_is_409_unless_allowed(scim: Scim) -> None:
    scim.create_group("Sales")
    assert_error(scim.post("/Groups", {"displayName": "SALES"}), 409, "uniqueness")
    scim.settings(allow_duplicate_group_names=True)
    assert scim.post("/Groups", {"displayName": "Sales"}).status_code == 201


def test_unknown_members_are_named_unless_ignored(scim: Scim) -> None:
    user = scim.create_user("carol")
    body = assert_error(
        scim.post("/Groups", {"displayName": "G", "members": [{"value": user["id"]}, {"value": "ghost-1"}]}),
        400,
        "invalidValue",
    )
    assert "ghost-1" in body["detail"]
    assert scim.get("/Groups").json()["totalResults"] == 0
    scim.settings(ignore_unknown_members=True)
    group = scim.create_group("G", members=[user["id"], "ghost-1"])
    assert [m["value"] for m in group["members"]] == [user["id"]]


def test_nested_groups_and_derived_user_groups_with_cycle(scim: Scim) -> None:
    user = scim.create_user("dan")
    inner = scim.create_group("Inner", members=[user["id"]])
    outer = scim.create_group("Outer", members=[inner["id"]])
    assert outer["members"][0]["type"] == "Group"
    assert outer["members"][0]["$ref"].endswith(f"/Groups/{inner['id']}")
    # a cycle: Inner contains Outer too
    response = scim.patch_ops(
        f"/Groups/{inner['id']}", {"op": "add", "path": "members", "value": [{"value": outer["id"]}]}
    )
    assert response.status_code == 204
    groups = scim.get(f"/Users/{user['id']}").json()["groups"]
    assert groups == [
        {
            "value": inner["id"],
            "$ref": f"http://testserver/scim/v2/Groups/{inner['id']}",
            "display": "Inner",
            "type": "direct",
        }
    ]
    scim.settings(indirect_groups=True)
    groups = scim.get(f"/Users/{user['id']}").json()["groups"]
    assert {(g["value"], g["type"]) for g in groups} == {(inner["id"], "direct"), (outer["id"], "indirect")}


def test_user_groups_is_read_only(scim: Scim) -> None:
    user = scim.create_user("erin")
    group = scim.create_group("Team")
    response = scim.put(f"/Users/{user['id']}", {"userName": "erin", "groups": [{"value": group["id"]}]})
    assert response.status_code == 200
    assert "groups" not in response.json()
    assert member_ids(scim, group["id"]) == []


def test_deleting_user_removes_memberships_and_bumps_group(scim: Scim) -> None:
    user = scim.create_user("fay")
    other = scim.create_user("gus")
    group = scim.create_group("Ops", members=[user["id"], other["id"]])
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    after = scim.get(f"/Groups/{group['id']}").json()
    assert [m["value"] for m in after["members"]] == [other["id"]]
    assert after["meta"]["version"] != group["meta"]["version"]


def test_deactivating_user_keeps_memberships(scim: Scim) -> None:
    user = scim.create_user("hal")
    group = scim.create_group("Keep", members=[user["id"]])
    scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False})
    assert member_ids(scim, group["id"]) == [user["id"]]


def test_deleting_group_removes_its_memberships(scim: Scim) -> None:
    user = scim.create_user("ida")
    group = scim.create_group("Gone", members=[user["id"]])
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert_error(scim.get(f"/Groups/{group['id']}"), 404)
    assert "groups" not in scim.get(f"/Users/{user['id']}").json()


def test_filters_on_members_and_display_name(scim: Scim) -> None:
    u1, u2 = scim.create_user("jo")["id"], scim.create_user("kim")["id"]
    g1 = scim.create_group("Alpha", members=[u1], externalId="ext-a")["id"]
    g2 = scim.create_group("Beta", members=[u1, u2])["id"]

    def ids(flt: str) -> list[str]:
        body = scim.get("/Groups", params={"filter": flt, "excludedAttributes": "members"}).json()
        assert all("members" not in r for r in body["Resources"])
        return sorted(r["id"] for r in body["Resources"])

    assert ids(f'members[value eq "{u2}"]') == [g2]
    assert ids(f'members.value eq "{u1}"') == sorted([g1, g2])
    assert ids('displayName eq "alpha"') == [g1]
    assert ids('externalId eq "ext-a"') == [g1]


def test_excluded_members_on_get(scim: Scim) -> None:
    user = scim.create_user("lu")
    group = scim.create_group("Big", members=[user["id"]])
    body = scim.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"}).json()
    assert "members" not in body and body["displayName"] == "Big"
    only = scim.get(f"/Groups/{group['id']}", params={"attributes": "displayName"}).json()
    assert set(only) == {"schemas", "id", "displayName"}


def test_put_replaces_members(scim: Scim) -> None:
    a, b, c = (scim.create_user(n)["id"] for n in ("ma", "mb", "mc"))
    group = scim.create_group("Put", members=[a, b])
    response = scim.put(
        f"/Groups/{group['id']}", {"displayName": "Put2", "members": [{"value": c}, {"value": b}]}
    )
    assert response.status_code == 200, response.text
    assert sorted(m["value"] for m in response.json()["members"]) == sorted([b, c])
    assert response.json()["displayName"] == "Put2"


def patch_group(scim: Scim, group_id: str, *ops: dict[str, Any]) -> None:
    response = scim.patch_ops(f"/Groups/{group_id}", *ops)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["etag"].startswith('W/"')


def test_okta_member_patch_forms(scim: Scim) -> None:
    a, b, c = (scim.create_user(n)["id"] for n in ("oa", "ob", "oc"))
    group = scim.create_group("Okta Group", members=[])
    gid = group["id"]
    patch_group(
        scim,
        gid,
        {
            "op": "add",
            "path": "members",
            "value": [{"value": a, "display": "oa"}, {"value": b, "display": "ob"}],
        },
    )
    assert member_ids(scim, gid) == sorted([a, b])
    patch_group(scim, gid, {"op": "remove", "path": f'members[value eq "{a}"]'})
    assert member_ids(scim, gid) == [b]
    patch_group(scim, gid, {"op": "replace", "path": "members", "value": [{"value": c}]})
    assert member_ids(scim, gid) == [c]
    patch_group(scim, gid, {"op": "replace", "value": {"id": gid, "displayName": "Okta Renamed"}})
    assert scim.get(f"/Groups/{gid}").json()["displayName"] == "Okta Renamed"


def test_entra_member_patch_forms(scim: Scim) -> None:
    ids = [scim.create_user(f"e{i}")["id"] for i in range(4)]
    gid = scim.create_group("Entra Group")["id"]
    patch_group(
        scim, gid, {"op": "Add", "path": "members", "value": [{"$ref": None, "value": i} for i in ids]}
    )
    assert member_ids(scim, gid) == sorted(ids)
    # Remove with a value array removes exactly those members, never the whole group.
    patch_group(
        scim, gid, {"op": "Remove", "path": "members", "value": [{"value": ids[0]}, {"value": ids[1]}]}
    )
    assert member_ids(scim, gid) == sorted(ids[2:])
    patch_group(scim, gid, {"op": "Replace", "path": "displayName", "value": "Entra Renamed"})
    assert scim.get(f"/Groups/{gid}").json()["displayName"] == "Entra Renamed"


def test_remove_all_members_without_value(scim: Scim) -> None:
    ids = [scim.create_user(f"r{i}")["id"] for i in range(3)]
    gid = scim.create_group("Clear", members=ids)["id"]
    patch_group(scim, gid, {"op": "remove", "path": "members"})
    assert member_ids(scim, gid) == []


def test_member_patch_is_atomic(scim: Scim) -> None:
    a = scim.create_user("at1")["id"]
    group = scim.create_group("Atomic", members=[a])
    b = scim.create_user("at2")["id"]
    response = scim.patch_ops(
        f"/Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": b}]},
        {"op": "replace", "path": "displayName", "value": None},
        {"op": "add", "path": "members", "value": [{"value": "no-such-user"}]},
    )
    assert response.status_code == 400
    after = scim.get(f"/Groups/{group['id']}").json()
    assert [m["value"] for m in after["members"]] == [a]
    assert after["meta"]["version"] == group["meta"]["version"]


def test_patch_returns_200_with_body_when_attributes_asked(scim: Scim) -> None:
    a = scim.create_user("pa")["id"]
    gid = scim.create_group("Body")["id"]
    response = scim.patch_ops(
        f"/Groups/{gid}?excludedAttributes=members", {"op": "add", "path": "members", "value": [{"value": a}]}
    )
    assert response.status_code == 200
    assert response.json()["displayName"] == "Body" and "members" not in response.json()
    scim.settings(patch_204_groups=False)
    response = scim.patch_ops(f"/Groups/{gid}", {"op": "replace", "path": "displayName", "value": "Body2"})
    assert response.status_code == 200 and response.json()["members"][0]["value"] == a


def test_member_change_bumps_version_and_noop_does_not(scim: Scim) -> None:
    a = scim.create_user("va")["id"]
    gid = scim.create_group("Versions")["id"]
    r1 = scim.patch_ops(f"/Groups/{gid}", {"op": "add", "path": "members", "value": [{"value": a}]})
    assert r1.headers["etag"] == 'W/"2"'
    r2 = scim.patch_ops(f"/Groups/{gid}", {"op": "add", "path": "members", "value": [{"value": a}]})
    assert r2.headers["etag"] == 'W/"2"'  # already a member: nothing changed


@pytest.mark.parametrize("path", ["/Groups/.search", "/.search"])
def test_search_groups(scim: Scim, path: str) -> None:
    scim.create_group("Searchable")
    body = scim.post(
        path,
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'displayName sw "search"',
        },
    ).json()
    assert body["totalResults"] == 1 and body["Resources"][0]["displayName"] == "Searchable"


def test_streamed_group_body_honours_member_sub_attribute_projection(scim: Scim) -> None:
    names = {scim.create_user(f"s{i}", displayName=f"S {i}")["id"]: f"S {i}" for i in range(5)}
    ids = sorted(names)
    gid = scim.create_group("Streamed", members=ids)["id"]
    full = scim.get(f"/Groups/{gid}")
    assert full.headers["content-type"].startswith("application/scim+json")
    assert full.headers["etag"] == 'W/"1"'
    body = full.json()
    assert [m["value"] for m in body["members"]] == ids
    assert all(m["display"] == names[m["value"]] for m in body["members"])
    assert body["meta"]["resourceType"] == "Group" and body["displayName"] == "Streamed"
    values_only = scim.get(f"/Groups/{gid}", params={"attributes": "members.value"}).json()
    assert values_only["members"] == [{"value": i} for i in ids]
    assert set(values_only) == {"schemas", "id", "members"}


def test_client_display_is_kept_and_reference_collection_forms_work(scim: Scim) -> None:
    user = scim.create_user("disp.user", displayName="Real Name")
    gid = scim.create_group("Displays")["id"]
    patch_group(
        scim,
        gid,
        {"op": "add", "path": "members", "value": [{"displayName": "new User", "value": user["id"]}]},
    )
    members = scim.get(f"/Groups/{gid}").json()["members"]
    assert members == [
        {
            "value": user["id"],
            "$ref": f"http://testserver/scim/v2/Users/{user['id']}",
            "type": "User",
            "display": "new User",
        }
    ]
    other = scim.create_user("bare.user")["id"]
    patch_group(scim, gid, {"op": "add", "path": "members", "value": other})
    assert member_ids(scim, gid) == sorted([user["id"], other])
