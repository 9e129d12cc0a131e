"""What the console's pages show, over real HTTP on both databases."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.console.conftest import Console
from tests.scim_client import mint_token, wait_for

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_the_overview_counts_active_and_inactive_users_and_groups(console: Console) -> None:
    tenant = f"o-{uuid.uuid4().hex[:8]}"
    token = mint_token(console.database_url, tenant)
    headers = console.scim_headers(token)
    for n, active in enumerate((True, True, False)):
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"u{n}",
            "active": active,
        }
        assert httpx.post(f"{console.scim}/Users", json=body, headers=headers, timeout=10).status_code == 201
    group = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g"}
    assert httpx.post(f"{console.scim}/Groups", json=group, headers=headers, timeout=10).status_code == 201
    with console.signed_in() as client:

        def row() -> str:
            html = client.get("/console/").text
            found = re.search(rf"<th scope=\"row\"><a [^>]*>{tenant}</a></th>(.*?)</tr>", html, re.S)
            assert found is not None
            return found.group(1)

        # The inactive count is made in the background: the first visit may say "counting".
        wait_for(lambda: "3 (2 / 1)" in row(), timeout=10)
        cells = re.findall(r"<td>(.*?)</td>", row(), re.S)
        assert ">1</a>" in cells[1]  # one group
        assert "POST" in cells[2] and "201" in cells[2]  # the last IdP request


def test_a_group_pages_through_its_members(console: Console) -> None:
    headers = console.scim_headers()
    ids = []
    for n in range(55):
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"m{n}-{uuid.uuid4().hex[:6]}",
        }
        ids.append(httpx.post(f"{console.scim}/Users", json=body, headers=headers, timeout=10).json()["id"])
    group = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": f"big-{uuid.uuid4().hex[:6]}",
        "members": [{"value": i} for i in ids],
    }
    gid = httpx.post(f"{console.scim}/Groups", json=group, headers=headers, timeout=10).json()["id"]
    with console.signed_in() as client:
        first = client.get(f"/console/groups/{console.tenant}/{gid}").text
        seen = set(re.findall(r"/console/users/[^/]+/([0-9a-f-]{36})", first))
        more = re.search(r'href="\?after=([^"]+)"', first)
        assert more is not None and len(seen) == 50
        second = client.get(f"/console/groups/{console.tenant}/{gid}?after={more.group(1)}").text
        seen |= set(re.findall(r"/console/users/[^/]+/([0-9a-f-]{36})", second))
        assert seen == set(ids)
        assert 'href="?after=' not in second


def test_the_user_search_pages_by_cursor_and_falls_back_to_display_names(console: Console) -> None:
    headers = console.scim_headers()
    mark = uuid.uuid4().hex[:6]
    made = set()
    for n in range(60):
        body = {"schemas": [USER], "userName": f"p{mark}-{n:02d}", "displayName": f"Shown{mark} {n:02d}"}
        made.add(httpx.post(f"{console.scim}/Users", json=body, headers=headers, timeout=10).json()["id"])
    link = re.compile(r'/console/users/[^/"]+/([0-9a-f-]{36})')
    with console.signed_in() as client:
        for q in (f"p{mark}", f"shown{mark}"):
            seen: set[str] = set()
            page = client.get("/console/users", params={"tenant": console.tenant, "q": q}).text
            seen |= set(link.findall(page))
            nxt = re.search(r'rel="next" href="\?([^"]+)"', page)
            assert nxt is not None, q
            page = client.get("/console/users?" + nxt.group(1).replace("&amp;", "&")).text
            seen |= set(link.findall(page))
            assert seen == made, q
            assert 'rel="next"' not in page
