"""Tenant isolation and injection resistance, on SQLite and PostgreSQL.

Two tenants share one database. Nothing one tenant sends can read, change or even detect the
other tenant's resources; hostile strings in filters, attribute names, sortBy and ids change
nothing and leak nothing (no SQL, no stack traces).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.scim_client import GROUP_URN, USER_URN, Scim, assert_error
from tests.security.helpers import assert_clean, other_tenant

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def snapshot(scim: Scim) -> list[dict[str, Any]]:
    users = scim.get("/Users", params={"count": 1000}).json()["Resources"]
    groups = scim.get("/Groups", params={"count": 1000}).json()["Resources"]
    return sorted(users + groups, key=lambda r: r["id"])


@pytest.fixture
def victim(scim: Scim) -> tuple[Scim, dict[str, Any], dict[str, Any]]:
    """The `scim` tenant owns a user and a group; returns (victim client, user, group)."""
    user = scim.create_user("victim@example.com", emails=[{"value": "victim@example.com"}])
    group = scim.create_group("Victims", members=[user["id"]])
    return scim, user, group


def test_cross_tenant_get_put_patch_delete_by_id_are_404_and_change_nothing(
    victim: tuple[Scim, dict[str, Any], dict[str, Any]],
) -> None:
    owner, user, group = victim
    before = snapshot(owner)
    attacker = other_tenant(owner)
    for endpoint, resource in (("/Users", user), ("/Groups", group)):
        path = f"{endpoint}/{resource['id']}"
        assert_error(attacker.get(path), 404)
        body = (
            {"schemas": [USER_URN], "userName": "pwned"}
            if endpoint == "/Users"
            else {
                "schemas": [GROUP_URN],
                "displayName": "pwned",
            }
        )
        assert_error(attacker.put(path, body), 404)
        assert_error(
            attacker.patch_ops(path, {"op": "replace", "path": "displayName", "value": "pwned"}), 404
        )
        assert_error(attacker.delete(path), 404)
        assert_error(attacker.get(path, headers={"If-None-Match": resource["meta"]["version"]}), 404)
    assert snapshot(owner) == before
    assert attacker.get("/Users").json()["totalResults"] == 0


def test_group_members_from_another_tenant_do_not_exist(
    victim: tuple[Scim, dict[str, Any], dict[str, Any]],
) -> None:
    owner, user, group = victim
    attacker = other_tenant(owner)
    body = {"schemas": [GROUP_URN], "displayName": "Grab", "members": [{"value": user["id"]}]}
    error = assert_error(attacker.post("/Groups", body), 400, "invalidValue")
    assert "do not exist" in error["detail"]
    mine = attacker.create_group("Mine")
    error = assert_error(
        attacker.patch_ops(
            f"/Groups/{mine['id']}", {"op": "add", "path": "members", "value": [{"value": user["id"]}]}
        ),
        400,
        "invalidValue",
    )
    assert "do not exist" in error["detail"]
    # Nested: the other tenant's *group* as a member is just as absent.
    error = assert_error(
        attacker.patch_ops(
            f"/Groups/{mine['id']}", {"op": "add", "path": "members", "value": [{"value": group["id"]}]}
        ),
        400,
        "invalidValue",
    )
    assert "do not exist" in error["detail"]
    groups = owner.get(f"/Users/{user['id']}").json().get("groups", [])
    assert [g["value"] for g in groups] == [group["id"]]  # the owner's membership is untouched


@pytest.mark.parametrize(
    "template",
    [
        'id eq "{user}"',
        'userName eq "victim@example.com"',
        'emails.value eq "victim@example.com"',
        'emails[value co "victim"]',
        'userName sw "v"',
        "userName pr",
        'id eq "{user}" or id eq "{group}"',
        'members.value eq "{user}"',
        'displayName eq "Victims"',
        'meta.resourceType eq "User"',
    ],
)
def test_filters_never_return_other_tenants_data(
    victim: tuple[Scim, dict[str, Any], dict[str, Any]], template: str
) -> None:
    owner, user, group = victim
    attacker = other_tenant(owner)
    attacker.create_user("attacker@example.com")
    text = template.format(user=user["id"], group=group["id"])
    for endpoint in ("/Users", "/Groups"):
        response = attacker.get(endpoint, params={"filter": text})
        assert_clean(response)
        if response.status_code == 200:
            ids = {r["id"] for r in response.json()["Resources"]}
            assert user["id"] not in ids and group["id"] not in ids
            assert "victim" not in response.text.lower()
        search = attacker.post(f"{endpoint}/.search", {"schemas": [SEARCH], "filter": text})
        assert_clean(search)
        if search.status_code == 200:
            assert "victim" not in search.text.lower()
    root = attacker.post("/.search", {"schemas": [SEARCH], "filter": text})
    assert_clean(root)
    if root.status_code == 200:
        assert user["id"] not in root.text and group["id"] not in root.text
        assert "victim" not in root.text.lower()


def test_root_search_and_unfiltered_lists_only_see_own_tenant(
    victim: tuple[Scim, dict[str, Any], dict[str, Any]],
) -> None:
    owner, user, _group = victim
    attacker = other_tenant(owner)
    own = attacker.create_user("own@example.com")
    root = attacker.post("/.search", {"schemas": [SEARCH]})
    assert root.status_code == 200
    assert [r["id"] for r in root.json()["Resources"]] == [own["id"]]
    assert attacker.get("/Groups").json()["totalResults"] == 0
    # Cursor pagination and sorting do not cross the boundary either.
    sorted_page = attacker.get("/Users", params={"sortBy": "userName", "cursor": ""})
    assert_clean(sorted_page)
    if sorted_page.status_code == 200:
        assert user["id"] not in sorted_page.text


INJECTION_FILTERS = [
    'userName eq "x\' OR 1=1 --"',
    'userName eq "x\\" OR \\"1\\"=\\"1"',
    'userName eq "x\\\\"',
    "userName eq 'x' or 1 eq 1",
    'userName co "%"',
    'userName co "_"',
    'userName sw "%"',
    'userName sw "_"',
    'userName ew "%"',
    'userName eq "\\u0000"',
    'userName eq "x"; DROP TABLE resources; --',
    'userName eq "x") OR (1=1',
    "1=1",
    "userName eq",
    'userName eq "a" and (userName eq "b" or',
    '"; SELECT * FROM tokens; --',
    "emails[value eq \"x' OR '1'='1\"]",
    'name.familyName gt "" or userName ne ""',
    "userName eq null or 1 eq 1",
    "id pr) UNION SELECT secret_hash FROM tokens --",
    'userName" eq "x',
    'urn:x:y:z:userName eq "x"',
]


@pytest.mark.parametrize("text", INJECTION_FILTERS)
def test_filter_injection_changes_nothing_and_leaks_nothing(
    victim: tuple[Scim, dict[str, Any], dict[str, Any]], text: str
) -> None:
    owner, _user, _group = victim
    attacker = other_tenant(owner)
    attacker.create_user("x")
    attacker.create_user("%wild_card")
    before = snapshot(owner)
    mine = snapshot(attacker)
    for endpoint in ("/Users", "/Groups"):
        response = attacker.get(endpoint, params={"filter": text})
        assert_clean(response, text)
        if response.status_code == 200:
            assert "victim" not in response.text.lower()
            assert response.json()["totalResults"] <= 2
        else:
            assert response.status_code == 400
    assert snapshot(owner) == before
    assert snapshot(attacker) == mine


def test_like_wildcards_are_literal(scim: Scim) -> None:
    scim.create_user("100%real")
    scim.create_user("100xreal")
    scim.create_user("a_b")
    scim.create_user("axb")
    scim.create_user("back\\slash")
    scim.create_user('quote"d')

    def names(text: str) -> list[str]:
        response = scim.get("/Users", params={"filter": text})
        assert response.status_code == 200, response.text
        return sorted(r["userName"] for r in response.json()["Resources"])

    assert names('userName co "%"') == ["100%real"]
    assert names('userName co "0%r"') == ["100%real"]
    assert names('userName sw "a_"') == ["a_b"]
    assert names('userName ew "_b"') == ["a_b"]
    assert names('userName co "\\\\"') == ["back\\slash"]
    assert names('userName eq "quote\\"d"') == ['quote"d']
    assert names('userName sw "quote\\""') == ['quote"d']


@pytest.mark.parametrize(
    "params",
    [
        {"attributes": "userName,'; DROP TABLE resources; --"},
        {"attributes": "name.givenName) FROM tokens --"},
        {"excludedAttributes": "../../etc/passwd"},
        {"sortBy": "userName; DROP TABLE resources"},
        {"sortBy": "(SELECT secret_hash FROM tokens)"},
        {"sortBy": "userName", "sortOrder": "descending; DROP TABLE resources"},
        {"sortBy": "doc"},
        {"sortBy": "tenant_id"},
        {"startIndex": "1; DROP TABLE resources"},
        {"count": "10 OR 1=1"},
        {"count": "-1"},
        {"count": "99999999999999999999999"},
        {"startIndex": "-99999999999999999999"},
        {"cursor": "' OR 1=1 --"},
        {"cursor": "eyJ0ZW5hbnQiOiAib3RoZXIifQ"},
    ],
)
def test_hostile_query_parameters(
    victim: tuple[Scim, dict[str, Any], dict[str, Any]], params: dict[str, str]
) -> None:
    owner, _, _ = victim
    attacker = other_tenant(owner)
    attacker.create_user("x")
    before = snapshot(owner)
    response = attacker.get("/Users", params=params)
    assert_clean(response, *params.values())
    if response.status_code == 200:
        assert "victim" not in response.text.lower()
    assert snapshot(owner) == before


@pytest.mark.parametrize(
    "resource_id",
    [
        "' OR '1'='1",
        "1; DROP TABLE resources; --",
        "../../../../etc/passwd",
        "..%2F..%2Fadmin%2Fv1%2Fevents",
        "%00",
        "x" * 5000,
        "00000000-0000-0000-0000-000000000000",
        "*",
        "%25",
        "_",
    ],
)
def test_hostile_ids(victim: tuple[Scim, dict[str, Any], dict[str, Any]], resource_id: str) -> None:
    owner, _, _ = victim
    attacker = other_tenant(owner)
    before = snapshot(owner)
    for endpoint in ("/Users", "/Groups"):
        path = f"{endpoint}/{resource_id}"
        for response in (
            attacker.get(path),
            attacker.put(path, {"schemas": [USER_URN], "userName": "x"}),
            attacker.patch_ops(path, {"op": "replace", "path": "displayName", "value": "x"}),
            attacker.delete(path),
        ):
            assert_clean(response)
            assert response.status_code in (400, 404, 405), response.text
    assert snapshot(owner) == before


def test_path_traversal_stays_inside_the_api(scim: Scim) -> None:
    for path in (
        "/../admin/v1/events",
        "/Users/../../admin/v1/events",
        "/%2e%2e/admin/v1/events",
        "/Schemas/../../../etc/passwd",
    ):
        response = scim.get(path)
        assert_clean(response)
        assert response.status_code in (401, 404), (path, response.status_code)
        assert "events" not in response.json().get("detail", "") or response.status_code == 404


def test_hostile_attribute_names_in_bodies(victim: tuple[Scim, dict[str, Any], dict[str, Any]]) -> None:
    owner, user, _ = victim
    attacker = other_tenant(owner)
    mine = attacker.create_user("mine")
    before = snapshot(owner)
    bodies: list[dict[str, Any]] = [
        {"schemas": [USER_URN], "userName": "a", "tenant_id": owner.tenant_id},
        {"schemas": [USER_URN], "userName": "b", "id": user["id"]},
        {
            "schemas": [USER_URN],
            "userName": "c",
            "meta": {"location": "http://evil"},
            "'; DROP TABLE x; --": 1,
        },
        {"schemas": ["urn:x' OR 1=1"], "userName": "d"},
    ]
    for body in bodies:
        response = attacker.post("/Users", body)
        assert_clean(response)
        if response.status_code == 201:
            assert response.json()["id"] != user["id"]
    for path in (
        "userName'; DROP TABLE resources; --",
        'emails[value eq "x\' OR 1=1"].value',
        "tenant_id",
        "id",
    ):
        response = attacker.patch_ops(f"/Users/{mine['id']}", {"op": "replace", "path": path, "value": "x"})
        assert_clean(response)
    assert snapshot(owner) == before
