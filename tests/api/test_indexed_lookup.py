"""`attr eq "value"` on an indexed attribute is answered by prebuilt statements (the IdPs'
existence check). It must answer exactly what the general filter compiler answers: the same
resources, order, paging, totals and derived `groups`. `<filter> and id pr` forces the general path.
"""

from __future__ import annotations

import pytest

from tests.scim_client import Scim


@pytest.fixture
def directory(scim: Scim) -> Scim:
    for i in range(5):
        scim.create_user(
            f"Person{i}@Example.com",
            displayName="Shared Name" if i < 4 else "Alone",
            externalId=f"ext-{i % 2}",
            emails=[{"value": f"p{i}@example.com"}, {"value": "team@example.com"}],
        )
    ids = [
        scim.get("/Users", params={"filter": f'userName eq "person{i}@example.com"'}).json()["Resources"][0][
            "id"
        ]
        for i in range(3)
    ]
    scim.create_group("Staff", [ids[0], ids[2]])
    scim.create_group("Admins", [ids[0]])
    scim.create_group("Shared Name", [ids[2]])
    return scim


FILTERS = [
    'userName eq "PERSON1@example.com"',
    'userName eq "nobody@example.com"',
    'displayName eq "shared name"',
    'emails.value eq "TEAM@example.com"',
    'externalId eq "ext-0"',
    'externalId eq "EXT-0"',  # externalId is caseExact: no match
    'displayName eq ""',
]


@pytest.mark.parametrize("text", FILTERS)
def test_the_prebuilt_lookup_answers_like_the_general_compiler(directory: Scim, text: str) -> None:
    for path in ("/Users", "/Groups"):
        for start, count in [(1, 100), (1, 2), (2, 2), (3, 1), (9, 5), (1, 0)]:
            params = {"startIndex": str(start), "count": str(count)}
            fast = directory.get(path, params={**params, "filter": text})
            general = directory.get(path, params={**params, "filter": f"{text} and id pr"})
            assert fast.status_code == general.status_code, (path, text, fast.text)
            assert fast.json() == general.json(), (path, text, start, count)


def test_the_lookup_sees_group_memberships_and_projection(directory: Scim) -> None:
    params = {"filter": 'userName eq "person0@example.com"', "attributes": "groups,userName"}
    body = directory.get("/Users", params=params).json()
    [user] = body["Resources"]
    assert [g["display"] for g in user["groups"]] == ["Admins", "Staff"]
    assert set(user) == {"schemas", "id", "userName", "groups"}
