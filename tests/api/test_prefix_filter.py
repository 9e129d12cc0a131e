"""`sw` on an indexed attribute over HTTP: the index range (storage/filter_sql.py `prefix_rows`) must answer
exactly what a Python filter over the same users answers, for prefixes a `LIKE` pattern or a
collation could get wrong (`%`, `_`, `\\`, non-ASCII, upper case), on SQLite and PostgreSQL, on the
list (index pagination) and with a cursor, with the right totals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from provisor.storage import resources as store
from tests.scim_client import Scim

USER_NAMES = [
    "a%b",
    "a%",
    "a_b",
    "axb",
    "a\\b",
    "a\\\\c",
    "ab",
    "Ünal",
    "ünver",
    "über",
    "UNAL2",
    "émile",
    "emile",
    "Émile.2",
    "zz",
    "z",
    "日本語",
    "日本",
    "a\U0010fffd",
]
PREFIXES = [
    "a%",
    "a_",
    "a\\",
    "A",
    "a",
    "ü",
    "Ü",
    "un",
    "é",
    "E",
    "z",
    "日本",
    "a\U0010fffd",
    "nobody",
    "%",
    "_",
]


@pytest.fixture
def users(scim: Scim) -> dict[str, dict[str, Any]]:
    made = {}
    for n, name in enumerate(USER_NAMES):
        # Two emails with the same prefix: a resource matching twice is still listed once.
        emails = [{"value": f"{name}@one.test"}, {"value": f"{name}@two.test"}]
        made[name] = scim.create_user(name, displayName=f"D{n}", emails=emails)
    return made


def literal(text: str) -> str:
    return orjson.dumps(text).decode()


def listed(scim: Scim, text: str, count: int) -> tuple[list[str], int]:
    """Every page of the filter by startIndex: the ids in order and the total of the first page."""
    ids: list[str] = []
    start, total = 1, None
    while True:
        body = scim.get(
            "/Users", params={"filter": text, "count": str(count), "startIndex": str(start)}
        ).json()
        total = body["totalResults"] if total is None else total
        ids += [r["id"] for r in body.get("Resources", [])]
        if not body.get("Resources"):
            return ids, total
        start += count


def by_cursor(scim: Scim, text: str, count: int) -> tuple[list[str], int]:
    ids: list[str] = []
    params = {"filter": text, "count": str(count), "cursor": ""}
    total = None
    while True:
        response = scim.get("/Users", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        total = body["totalResults"] if total is None else total
        ids += [r["id"] for r in body.get("Resources", [])]
        if "nextCursor" not in body:
            return ids, total
        params["cursor"] = body["nextCursor"]


@pytest.mark.parametrize("narrow_up_to", [1000, 2])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_sw_answers_like_a_python_filter(
    scim: Scim,
    users: dict[str, dict[str, Any]],
    prefix: str,
    narrow_up_to: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both shapes: driven from the index range (narrow) and the filter over the tenant (broad).
    monkeypatch.setattr(store, "DRIVEN_MATCHES", narrow_up_to)
    expected = [u["id"] for name, u in users.items() if name.lower().startswith(prefix.lower())]
    for attr in ("userName", "emails.value"):
        text = f"{attr} sw {literal(prefix)}"
        for count in (100, 2):
            ids, total = listed(scim, text, count)
            assert ids == expected, (text, count)  # creation order, each user once
            assert total == len(expected), (text, count)
            ids, total = by_cursor(scim, text, count)
            assert ids == expected, (text, count, "cursor")
            assert total == len(expected), (text, count, "cursor")


def test_sw_matching_nobody_is_an_empty_page(scim: Scim, users: dict[str, dict[str, Any]]) -> None:
    body = scim.get("/Users", params={"filter": 'userName sw "q"', "count": "100"}).json()
    assert body["totalResults"] == 0
    assert body.get("Resources", []) == []


def test_sw_with_a_cursor_and_sort_by(scim: Scim, users: dict[str, dict[str, Any]]) -> None:
    expected = sorted(
        (u for name, u in users.items() if name.lower().startswith("a")),
        key=lambda u: (u["displayName"].lower(), u["id"]),
        reverse=True,
    )
    params = {"filter": 'userName sw "a"', "count": "2", "cursor": "", "sortBy": "displayName"}
    params["sortOrder"] = "descending"
    ids: list[str] = []
    while True:
        body = scim.get("/Users", params=params).json()
        ids += [r["id"] for r in body["Resources"]]
        if "nextCursor" not in body:
            break
        params["cursor"] = body["nextCursor"]
    assert ids == [u["id"] for u in expected]
