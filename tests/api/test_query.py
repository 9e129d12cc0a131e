"""Sorting, index and cursor pagination (RFC 9865), and `/.search`, over HTTP on both databases."""

from __future__ import annotations

from typing import Any

from tests.scim_client import Scim, assert_error

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def seed(scim: Scim, n: int) -> list[dict[str, Any]]:
    return [
        scim.create_user(
            f"user{i:03d}", name={"familyName": f"F{(i * 7) % n:03d}"}, title=None if i % 3 else "T"
        )
        for i in range(n)
    ]


def test_sort_by_attribute_both_directions_with_stable_tiebreak(scim: Scim) -> None:
    users = seed(scim, 9)
    asc = scim.get("/Users", params={"sortBy": "name.familyName"}).json()["Resources"]
    assert [u["name"]["familyName"] for u in asc] == sorted(u["name"]["familyName"] for u in users)
    desc = scim.get("/Users", params={"sortBy": "userName", "sortOrder": "descending"}).json()["Resources"]
    assert [u["userName"] for u in desc] == sorted((u["userName"] for u in users), reverse=True)
    by_title = scim.get("/Users", params={"sortBy": "title"}).json()["Resources"]
    titled = [u for u in by_title if "title" in u]
    assert by_title[: len(titled)] == titled  # missing values sort last
    untitled_ids = [u["id"] for u in by_title if "title" not in u]
    assert untitled_ids == sorted(untitled_ids)  # tiebreak on id
    assert_error(scim.get("/Users", params={"sortBy": "nope"}), 400)
    assert_error(scim.get("/Users", params={"sortOrder": "sideways"}), 400, "invalidValue")


def test_sort_is_case_insensitive_for_case_insensitive_attributes(scim: Scim) -> None:
    for name in ("bravo", "Alpha", "charlie"):
        scim.create_user(name)
    names = [u["userName"] for u in scim.get("/Users", params={"sortBy": "userName"}).json()["Resources"]]
    assert names == ["Alpha", "bravo", "charlie"]


def walk(scim: Scim, params: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    body = scim.get("/Users", params={**params, "cursor": ""}).json()
    while True:
        assert "startIndex" not in body
        seen.extend(r["id"] for r in body["Resources"])
        if "nextCursor" not in body:
            return seen
        body = scim.get("/Users", params={**params, "cursor": body["nextCursor"]}).json()


def test_cursor_pagination_walks_everything_once(scim: Scim) -> None:
    users = seed(scim, 11)
    ids = walk(scim, {"count": 3})
    assert ids == [u["id"] for u in users]
    by_name = walk(scim, {"count": 4, "sortBy": "name.familyName", "sortOrder": "descending"})
    expected = [
        u["id"] for u in sorted(users, key=lambda u: (u["name"]["familyName"], u["id"]), reverse=True)
    ]
    assert by_name == expected
    by_title = walk(scim, {"count": 2, "sortBy": "title"})  # NULL keys cross page boundaries
    assert sorted(by_title) == sorted(u["id"] for u in users) and len(by_title) == 11


def test_cursor_stays_correct_while_resources_change(scim: Scim) -> None:
    users = seed(scim, 10)
    first = scim.get("/Users", params={"cursor": "", "count": 4}).json()
    seen = [r["id"] for r in first["Resources"]]
    scim.delete(f"/Users/{users[1]['id']}")  # already seen
    scim.delete(f"/Users/{users[6]['id']}")  # not yet seen: disappears
    late = scim.create_user("late-arrival")
    body = first
    while "nextCursor" in body:
        body = scim.get("/Users", params={"cursor": body["nextCursor"], "count": 4}).json()
        seen.extend(r["id"] for r in body["Resources"])
    survivors = [u["id"] for i, u in enumerate(users) if i != 6]
    assert [i for i in seen if i != late["id"]] == survivors  # no duplicates, no skips
    assert len(seen) == len(set(seen))


def test_previous_cursor_goes_back(scim: Scim) -> None:
    users = seed(scim, 7)
    p1 = scim.get("/Users", params={"cursor": "", "count": 3}).json()
    assert "previousCursor" not in p1
    p2 = scim.get("/Users", params={"cursor": p1["nextCursor"], "count": 3}).json()
    back = scim.get("/Users", params={"cursor": p2["previousCursor"], "count": 3}).json()
    assert [r["id"] for r in back["Resources"]] == [u["id"] for u in users[:3]]
    assert [r["id"] for r in p2["Resources"]] == [u["id"] for u in users[3:6]]


def test_bad_or_foreign_cursor_is_invalid_cursor(scim: Scim) -> None:
    seed(scim, 3)
    assert_error(scim.get("/Users", params={"cursor": "garbage!"}), 400, "invalidCursor")
    token = scim.get("/Users", params={"cursor": "", "count": 1}).json()["nextCursor"]
    # the same cursor with another filter or sort is refused rather than silently mis-paging
    assert_error(scim.get("/Users", params={"cursor": token, "sortBy": "userName"}), 400, "invalidCursor")


def test_service_provider_config_advertises_pagination(scim: Scim) -> None:
    pagination = scim.get("/ServiceProviderConfig").json()["pagination"]
    assert pagination["cursor"] is True and pagination["index"] is True
    assert pagination["defaultPaginationMethod"] == "index"
    assert pagination["defaultPageSize"] == 100 and pagination["maxPageSize"] == 1000


def test_search_endpoints_take_the_same_parameters(scim: Scim) -> None:
    users = seed(scim, 5)
    scim.create_group("Grp-user")
    body = scim.post(
        "/Users/.search",
        {
            "schemas": [SEARCH],
            "filter": 'userName sw "user00"',
            "sortBy": "userName",
            "sortOrder": "descending",
            "startIndex": 2,
            "count": 2,
            "attributes": ["userName"],
        },
    ).json()
    assert body["totalResults"] == 5 and body["startIndex"] == 2
    assert [r["userName"] for r in body["Resources"]] == ["user003", "user002"]
    assert set(body["Resources"][0]) == {"schemas", "id", "userName"}
    root = scim.post(
        "/.search", {"schemas": [SEARCH], "filter": 'meta.resourceType eq "Group" or userName eq "user001"'}
    ).json()
    assert root["totalResults"] == 2
    assert {r["meta"]["resourceType"] for r in root["Resources"]} == {"User", "Group"}
    assert users[1]["id"] in {r["id"] for r in root["Resources"]}
    assert_error(scim.get("/Users/.search"), 405)
    assert_error(scim.post("/Users/.search", {"schemas": ["urn:wrong"]}), 400, "invalidSyntax")


def test_a_start_index_past_any_integer_a_database_holds_is_an_empty_page(scim: Scim) -> None:
    """RFC 7644 3.4.2.4: a startIndex past the results gives an empty page, however large; past
    2^63 it no longer fit the databases' integers and the list answered 500 (found by the fuzz)."""
    seed(scim, 2)
    scim.create_group("grp")
    huge = str(2**63 + 1)
    for path, params, total in (
        ("/Users", {}, 2),
        ("/Users", {"filter": 'userName eq "user001"'}, 1),
        ("/Users", {"filter": 'userName sw "user"'}, 2),
        ("/Users", {"sortBy": "userName", "sortOrder": "descending"}, 2),
        ("/Groups", {}, 1),
    ):
        response = scim.get(path, params={**params, "startIndex": huge, "count": "5"})
        assert response.status_code == 200, (path, params, response.text)
        body = response.json()
        assert not body.get("Resources") and body["totalResults"] == total, (path, params, body)
    root = scim.post("/.search", {"schemas": [SEARCH], "startIndex": 2**63 + 1, "count": 5})
    assert root.status_code == 200, root.text
    assert root.json()["totalResults"] == 3 and not root.json().get("Resources")
