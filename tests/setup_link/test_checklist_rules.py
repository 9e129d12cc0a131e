"""Which logged requests tick which check, for the request shapes IdPs send (pure rules; the
end-to-end path is in test_setup_page.py)."""

from __future__ import annotations

from typing import Any

import pytest

from provisor.service.setup_links import CHECKS, error_of, matches


def row(method: str, path: str, status: int, query: str = "", body: str | None = None) -> dict[str, Any]:
    return {
        "at": "2026-12-05T00:00:00.000000Z",
        "method": method,
        "path": path,
        "query": query,
        "status": status,
        "response_body": body,
    }


def ticks(request: dict[str, Any]) -> set[str]:
    return {key for key, _ in CHECKS if matches(key, request)}


@pytest.mark.parametrize(
    ("request_row", "expected"),
    [
        # Okta's and Entra's existence checks, encoded as they send them.
        (row("GET", "/scim/v2/Users", 200, "filter=userName%20eq%20%22a%40x.com%22&startIndex=1&count=100"),
         {"existence_check"}),
        (row("GET", "/scim/v2/Users", 200, "filter=userName+eq+%22a%22"), {"existence_check"}),
        (row("GET", "/scim/v2/Users", 200, "filter=USERNAME%20EQ%20%22a%22"), {"existence_check"}),
        (row("GET", "/scim/v2/Users", 200, "count=1"), set()),
        (row("GET", "/scim/v2/Users", 400, "filter=userName%20eq"), set()),
        (row("GET", "/scim/v2/Users", 200, "filter=externalId%20eq%20%22a%22"), set()),
        (row("POST", "/scim/v2/Users", 201), {"user_created"}),
        (row("POST", "/scim/v2/Users", 409), set()),
        (row("PUT", "/scim/v2/Users/abc", 200), {"user_updated"}),
        (row("PATCH", "/scim/v2/Users/abc", 204), {"user_updated"}),
        (row("PATCH", "/scim/v2/Users/abc", 400), set()),
        (row("POST", "/scim/v2/Groups", 201), {"group_pushed"}),
        (row("PATCH", "/scim/v2/Groups/abc", 204), {"group_pushed"}),
        (row("PUT", "/scim/v2/Groups/abc", 200), {"group_pushed"}),
        (row("DELETE", "/scim/v2/Groups/abc", 204), set()),
        (row("GET", "/scim/v2/ServiceProviderConfig", 200), set()),
    ],
)  # fmt: skip
def test_rules(request_row: dict[str, Any], expected: set[str]) -> None:
    assert ticks(request_row) == {"authenticated"} | expected


def test_errors_are_named_from_the_stored_document_and_survive_a_missing_one() -> None:
    body = '{"status":"409","scimType":"uniqueness","detail":"taken"}'
    named = error_of(row("POST", "/scim/v2/Users", 409, body=body))
    assert (named["status"], named["scimType"], named["detail"]) == (409, "uniqueness", "taken")
    not_json = "[12 bytes, not JSON: not stored]"
    bare = error_of(row("GET", "/scim/v2/Users", 400, "filter=a%20b", body=not_json))
    assert bare["path"] == "/scim/v2/Users?filter=a b" and bare["scimType"] is None and bare["detail"] is None
