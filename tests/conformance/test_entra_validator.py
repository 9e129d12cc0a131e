"""The checks of Microsoft Entra ID's SCIM validator, as ordinary tests (conformance README, "What Microsoft
Entra ID sends"), on SQLite and PostgreSQL through the in-process app.
"""

from __future__ import annotations

import random
import uuid
import zoneinfo
from typing import Any

import pytest

from tests.scim_client import ENTERPRISE_URN, GROUP_URN, USER_URN, Scim, assert_error

TIMEZONES = sorted(tz for tz in zoneinfo.available_timezones() if "/" in tz and not tz.startswith("Etc/"))


def _contains(sent: Any, got: Any, where: str = "") -> list[str]:
    """Every attribute that was sent is in what came back (sub-attributes and elements included)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected an object, got {got!r}"]
        lower = {k.lower(): v for k, v in got.items()}
        problems: list[str] = []
        for key, value in sent.items():
            if key.lower() not in lower:
                problems.append(f"{where}.{key}: missing (sent {value!r})")
            else:
                problems += _contains(value, lower[key.lower()], f"{where}.{key}")
        return problems
    if isinstance(sent, list):
        if not isinstance(got, list):
            return [f"{where}: expected a list, got {got!r}"]
        problems = []
        for i, element in enumerate(sent):
            if not any(not _contains(element, candidate) for candidate in got):
                problems.append(f"{where}[{i}]: {element!r} not found in {got!r}")
        return problems
    return [] if sent == got else [f"{where}: sent {sent!r}, got {got!r}"]


def _one_by_filter(scim: Scim, resource: str, filter_: str, **params: Any) -> dict[str, Any]:
    response = scim.get(f"/{resource}", params={"filter": filter_, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["totalResults"] == 1, body
    resource_doc: dict[str, Any] = body["Resources"][0]
    return resource_doc


def _full_user(user_name: str, manager_id: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    return {
        "schemas": [USER_URN, ENTERPRISE_URN],
        "externalId": f"ext-{tag}",
        "userName": user_name,
        "active": True,
        "displayName": f"Full User {tag}",
        "nickName": f"nick{tag}",
        "title": "Principal Engineer",
        "userType": "Employee",
        "preferredLanguage": "en-GB",
        "locale": "en-GB",
        "timezone": random.choice(TIMEZONES),
        "profileUrl": f"https://profiles.example.com/{tag}",
        "name": {
            "formatted": f"Ms. Ada B Lovelace {tag} III",
            "familyName": f"Lovelace{tag}",
            "givenName": "Ada",
            "middleName": "B",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III",
        },
        "emails": [
            {"type": "work", "value": f"ada.{tag}@work.example.com", "primary": True},
            {"type": "home", "value": f"ada.{tag}@home.example.com", "primary": False},
        ],
        "phoneNumbers": [
            {"type": "work", "value": "+1 425 555 0100", "primary": True},
            {"type": "mobile", "value": "+1 425 555 0101", "primary": False},
            {"type": "fax", "value": "+1 425 555 0102", "primary": False},
        ],
        "addresses": [
            {
                "type": "work",
                "formatted": "1 Microsoft Way\nRedmond, WA 98052 US",
                "streetAddress": "1 Microsoft Way",
                "locality": "Redmond",
                "region": "WA",
                "postalCode": "98052",
                "country": "US",
                "primary": True,
            }
        ],
        ENTERPRISE_URN: {
            "employeeNumber": f"E{tag}",
            "costCenter": "CC-42",
            "organization": "Contoso",
            "division": "Cloud",
            "department": "Identity",
            "manager": {"value": manager_id},
        },
    }


def test_test_connection_random_guid_is_empty_list(scim: Scim) -> None:
    response = scim.get("/Users", params={"filter": f'userName eq "{uuid.uuid4()}"'})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totalResults"] == 0 and body["Resources"] == [], body


def test_create_with_every_attribute_and_read_back_by_filter(scim: Scim) -> None:
    manager = scim.create_user("manager@contoso.example.com", displayName="The Manager")
    sent = _full_user(f"Full.User.{uuid.uuid4().hex[:6]}@contoso.example.com", manager["id"])
    created = scim.post("/Users", sent)
    assert created.status_code == 201, created.text
    for doc in (
        created.json(),
        _one_by_filter(scim, "Users", f'userName eq "{sent["userName"]}"'),
        _one_by_filter(scim, "Users", f'externalId eq "{sent["externalId"]}"'),
        scim.get(f"/Users/{created.json()['id']}").json(),
    ):
        expected = {k: v for k, v in sent.items() if k != "schemas"}
        assert _contains(expected, doc) == [], doc
        assert set(doc["schemas"]) == {USER_URN, ENTERPRISE_URN}


def test_duplicate_user_and_duplicate_group_are_409(scim: Scim) -> None:
    scim.create_user("dup.user@contoso.example.com")
    body = {"schemas": [USER_URN], "userName": "dup.user@contoso.example.com", "active": True}
    assert_error(scim.post("/Users", body), 409, "uniqueness")
    body["userName"] = "DUP.USER@CONTOSO.EXAMPLE.COM"
    assert_error(scim.post("/Users", body), 409, "uniqueness")
    scim.create_group("Dup Group", members=[])
    group = {"schemas": [GROUP_URN], "displayName": "Dup Group", "members": []}
    assert_error(scim.post("/Groups", group), 409, "uniqueness")


def test_filters_are_case_insensitive_and_accept_unquoted_values(scim: Scim) -> None:
    user = scim.create_user("jyoung@contoso.example.com", externalId="jyoung", displayName="Jane Young")
    group = scim.create_group("engineering team", members=[])
    assert _one_by_filter(scim, "Users", 'userName eq "JYOUNG@CONTOSO.EXAMPLE.COM"')["id"] == user["id"]
    assert _one_by_filter(scim, "Users", 'USERNAME EQ "JYoung@Contoso.Example.com"')["id"] == user["id"]
    assert _one_by_filter(scim, "Users", "externalId eq jyoung")["id"] == user["id"]
    both = 'userName eq "jyoung@contoso.example.com" and externalId eq "jyoung"'
    assert _one_by_filter(scim, "Users", both)["id"] == user["id"]
    assert _one_by_filter(scim, "Groups", 'displayName eq "ENGINEERING TEAM"')["id"] == group["id"]


def _verbose_patch_ops(manager_id: str) -> list[dict[str, Any]]:
    ops: list[tuple[str, Any]] = [
        ("userName", "Verbose.Patched@contoso.example.com"),
        ("displayName", "Verbose Patched"),
        ("nickName", "vp"),
        ("title", "Director"),
        ("userType", "Contractor"),
        ("preferredLanguage", "fr-FR"),
        ("locale", "fr-FR"),
        ("timezone", "Europe/Paris"),
        ("profileUrl", "https://profiles.example.com/vp"),
        ("externalId", "vp-ext"),
        ("name.givenName", "Vera"),
        ("name.familyName", "Patchwell"),
        ("name.middleName", "P"),
        ("name.formatted", "Vera P Patchwell"),
        ("name.honorificPrefix", "Dr."),
        ("name.honorificSuffix", "PhD"),
        ('emails[type eq "work"].value', "vera.work@contoso.example.com"),
        ('emails[type eq "other"].value', "vera.other@contoso.example.com"),
        ('phoneNumbers[type eq "work"].value', "+33 1 00 00 00 01"),
        ('phoneNumbers[type eq "mobile"].value', "+33 6 00 00 00 02"),
        ('phoneNumbers[type eq "fax"].value', "+33 1 00 00 00 03"),
        ('addresses[type eq "work"].streetAddress', "35 rue de la Paix"),
        ('addresses[type eq "work"].locality', "Paris"),
        ('addresses[type eq "work"].region', "IDF"),
        ('addresses[type eq "work"].postalCode', "75002"),
        ('addresses[type eq "work"].country', "FR"),
        ('addresses[type eq "work"].formatted', "35 rue de la Paix, 75002 Paris"),
        (f"{ENTERPRISE_URN}:employeeNumber", "E-777"),
        (f"{ENTERPRISE_URN}:costCenter", "CC-7"),
        (f"{ENTERPRISE_URN}:organization", "Contoso FR"),
        (f"{ENTERPRISE_URN}:division", "EMEA"),
        (f"{ENTERPRISE_URN}:department", "Sales"),
        (f"{ENTERPRISE_URN}:manager", manager_id),
    ]
    return [
        {"op": ("Replace", "Add", "replace")[i % 3], "path": p, "value": v} for i, (p, v) in enumerate(ops)
    ]


def test_verbose_patch_replace_with_value_paths(scim: Scim) -> None:
    manager = scim.create_user("boss@contoso.example.com")
    user = scim.create_user(
        "verbose@contoso.example.com",
        emails=[{"type": "work", "value": "old.work@contoso.example.com", "primary": True}],
        phoneNumbers=[{"type": "work", "value": "+1 000"}],  # mobile and fax missing: created by the PATCH
    )
    response = scim.patch_ops(f"/Users/{user['id']}", *_verbose_patch_ops(manager["id"]))
    assert response.status_code in (200, 204), response.text
    got = scim.get(f"/Users/{user['id']}").json()
    expected = {
        "userName": "Verbose.Patched@contoso.example.com",
        "displayName": "Verbose Patched",
        "nickName": "vp",
        "title": "Director",
        "userType": "Contractor",
        "preferredLanguage": "fr-FR",
        "locale": "fr-FR",
        "timezone": "Europe/Paris",
        "profileUrl": "https://profiles.example.com/vp",
        "externalId": "vp-ext",
        "name": {
            "givenName": "Vera",
            "familyName": "Patchwell",
            "middleName": "P",
            "formatted": "Vera P Patchwell",
            "honorificPrefix": "Dr.",
            "honorificSuffix": "PhD",
        },
        "emails": [
            {"type": "work", "value": "vera.work@contoso.example.com", "primary": True},
            {"type": "other", "value": "vera.other@contoso.example.com"},
        ],
        "phoneNumbers": [
            {"type": "work", "value": "+33 1 00 00 00 01"},
            {"type": "mobile", "value": "+33 6 00 00 00 02"},
            {"type": "fax", "value": "+33 1 00 00 00 03"},
        ],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "35 rue de la Paix",
                "locality": "Paris",
                "region": "IDF",
                "postalCode": "75002",
                "country": "FR",
                "formatted": "35 rue de la Paix, 75002 Paris",
            }
        ],
        ENTERPRISE_URN: {
            "employeeNumber": "E-777",
            "costCenter": "CC-7",
            "organization": "Contoso FR",
            "division": "EMEA",
            "department": "Sales",
            "manager": {"value": manager["id"]},
        },
    }
    assert _contains(expected, got) == [], got
    assert len(got["emails"]) == 2 and len(got["phoneNumbers"]) == 3 and len(got["addresses"]) == 1, got
    assert (
        _one_by_filter(scim, "Users", 'userName eq "verbose.patched@contoso.example.com"')["id"] == user["id"]
    )


def test_pathless_replace_with_dotted_and_urn_keys(scim: Scim) -> None:
    user = scim.create_user("pathless@contoso.example.com", name={"givenName": "Old", "familyName": "Name"})
    value = {
        "name.givenName": "New",
        "name.familyName": "Surname",
        f"{ENTERPRISE_URN}:employeeNumber": "701984",
        f"{ENTERPRISE_URN}:department": "Finance",
        "active": "False",
        "displayName": "New Surname",
    }
    response = scim.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "value": value})
    assert response.status_code in (200, 204), response.text
    got = scim.get(f"/Users/{user['id']}").json()
    assert got["name"]["givenName"] == "New" and got["name"]["familyName"] == "Surname", got
    assert got[ENTERPRISE_URN]["employeeNumber"] == "701984", got
    assert got[ENTERPRISE_URN]["department"] == "Finance", got
    assert got["active"] is False and got["displayName"] == "New Surname", got


def _manager(scim: Scim, uid: str) -> Any:
    got = scim.get(f"/Users/{uid}").json()
    return (got.get(ENTERPRISE_URN) or {}).get("manager")


MANAGER_PATH = f"{ENTERPRISE_URN}:manager"


@pytest.mark.parametrize(
    "form",
    [
        "add-array-with-ref",
        "add-unqualified-object",
        "replace-urn-object",
        "replace-urn-bare-string",
        "add-urn-object",
    ],
)
def test_manager_set_in_every_form(scim: Scim, form: str) -> None:
    boss = scim.create_user("the.boss@contoso.example.com")
    user = scim.create_user("report@contoso.example.com")
    ref = f"http://testserver/scim/v2/Users/{boss['id']}"
    op = {
        "add-array-with-ref": {"op": "Add", "path": "manager", "value": [{"$ref": ref, "value": boss["id"]}]},
        "add-unqualified-object": {"op": "Add", "path": "manager", "value": {"value": boss["id"]}},
        "replace-urn-object": {"op": "Replace", "path": MANAGER_PATH, "value": {"value": boss["id"]}},
        "replace-urn-bare-string": {"op": "Replace", "path": MANAGER_PATH, "value": boss["id"]},
        "add-urn-object": {"op": "Add", "path": MANAGER_PATH, "value": {"value": boss["id"]}},
    }[form]
    response = scim.patch_ops(f"/Users/{user['id']}", op)
    assert response.status_code in (200, 204), response.text
    manager = _manager(scim, user["id"])
    assert isinstance(manager, dict) and manager.get("value") == boss["id"], manager


@pytest.mark.parametrize(
    "op",
    [
        {"op": "Remove", "path": MANAGER_PATH},
        {"op": "Replace", "path": MANAGER_PATH, "value": ""},
        {"op": "Replace", "path": MANAGER_PATH, "value": {"value": ""}},
        {"op": "Add", "path": MANAGER_PATH, "value": {"value": ""}},
        {"op": "Remove", "path": "manager"},
    ],
    ids=["remove", "replace-empty-string", "replace-empty-value", "add-empty-value", "remove-unqualified"],
)
def test_manager_removed_in_every_form(scim: Scim, op: dict[str, Any]) -> None:
    boss = scim.create_user("old.boss@contoso.example.com")
    user = scim.create_user(
        "reportee@contoso.example.com", **{ENTERPRISE_URN: {"manager": {"value": boss["id"]}}}
    )
    assert _manager(scim, user["id"])["value"] == boss["id"]
    response = scim.patch_ops(f"/Users/{user['id']}", op)
    assert response.status_code in (200, 204), response.text
    assert _manager(scim, user["id"]) in (None, {}), scim.get(f"/Users/{user['id']}").json()


def test_disable_user_then_filter_shows_active_false(scim: Scim) -> None:
    user = scim.create_user("disable.me@contoso.example.com", active=True)
    response = scim.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "False"})
    assert response.status_code in (200, 204), response.text
    found = _one_by_filter(scim, "Users", 'userName eq "disable.me@contoso.example.com"')
    assert found["active"] is False, found
    assert scim.get(f"/Users/{user['id']}").status_code == 200
    response = scim.patch_ops(f"/Users/{user['id']}", {"op": "Replace", "path": "active", "value": "True"})
    assert response.status_code in (200, 204), response.text
    assert scim.get(f"/Users/{user['id']}").json()["active"] is True


def test_group_members_add_and_remove(scim: Scim) -> None:
    users = [scim.create_user(f"member{i}@contoso.example.com")["id"] for i in range(4)]
    created = scim.post("/Groups", {"schemas": [GROUP_URN], "displayName": "Entra Group", "members": []})
    assert created.status_code == 201, created.text
    gid = created.json()["id"]

    add = {"op": "Add", "path": "members", "value": [{"$ref": None, "value": u} for u in users]}
    response = scim.patch_ops(f"/Groups/{gid}", add)
    assert response.status_code in (200, 204), response.text

    def members() -> set[str]:
        return {m["value"] for m in scim.get(f"/Groups/{gid}").json().get("members", [])}

    assert members() == set(users)
    slim = scim.get(f"/Groups/{gid}", params={"excludedAttributes": "members"})
    assert slim.status_code == 200 and "members" not in slim.json(), slim.text
    listed = scim.get(
        "/Groups", params={"excludedAttributes": "members", "filter": 'displayName eq "Entra Group"'}
    )
    assert listed.status_code == 200, listed.text
    assert [g["id"] for g in listed.json()["Resources"]] == [gid]
    assert "members" not in listed.json()["Resources"][0]

    remove_by_value = {"op": "Remove", "path": "members", "value": [{"value": users[0]}, {"value": users[1]}]}
    response = scim.patch_ops(f"/Groups/{gid}", remove_by_value)
    assert response.status_code in (200, 204), response.text
    assert members() == set(users[2:])

    response = scim.patch_ops(f"/Groups/{gid}", {"op": "Remove", "path": f'members[value eq "{users[2]}"]'})
    assert response.status_code in (200, 204), response.text
    assert members() == {users[3]}


def test_app_role_assignments_complex(scim: Scim) -> None:
    user = scim.create_user("roles@contoso.example.com")
    role = '{"id":"7a3e5c1e-0000-4000-8000-000000000001","value":"Admin","displayName":"Admin"}'
    op = {"op": "Add", "path": "roles", "value": [{"value": role, "primary": "True"}]}
    response = scim.patch_ops(f"/Users/{user['id']}", op)
    assert response.status_code in (200, 204), response.text
    roles = scim.get(f"/Users/{user['id']}").json().get("roles")
    assert roles and roles[0]["value"] == "Admin" and roles[0]["display"] == "Admin", roles
    writer = '{"id":"7a3e5c1e-0000-4000-8000-000000000002","value":"Writer","displayName":"Writer"}'
    response = scim.patch_ops(
        f"/Users/{user['id']}", {"op": "replace", "path": "roles", "value": [{"value": writer}]}
    )
    assert response.status_code in (200, 204), response.text
    roles = scim.get(f"/Users/{user['id']}").json().get("roles")
    assert [(r["value"], r.get("display")) for r in roles] == [("Writer", "Writer")], roles


@pytest.mark.parametrize("resource", ["Users", "Groups"])
def test_delete_twice(scim: Scim, resource: str) -> None:
    if resource == "Users":
        rid = scim.create_user("delete.twice@contoso.example.com")["id"]
    else:
        rid = scim.create_group("Delete Twice", members=[])["id"]
    assert scim.delete(f"/{resource}/{rid}").status_code == 204
    assert_error(scim.get(f"/{resource}/{rid}"), 404)
    assert_error(scim.delete(f"/{resource}/{rid}"), 404)


def test_two_page_pagination_with_count_5(scim: Scim) -> None:
    created = {scim.create_user(f"page.user{i:02d}@contoso.example.com")["id"] for i in range(12)}
    seen: list[str] = []
    for page in range(2):
        response = scim.get("/Users", params={"startIndex": page * 5 + 1, "count": 5})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["startIndex"] == page * 5 + 1, body
        assert body["itemsPerPage"] == 5 and len(body["Resources"]) == 5, body
        assert body["totalResults"] == 12, body
        seen += [r["id"] for r in body["Resources"]]
    assert len(set(seen)) == 10 and set(seen) <= created
