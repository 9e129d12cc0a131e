"""Every PUT and PATCH, of any type, is one read-apply-write (service/resources.py
`_read_apply_write`): the same If-Match precondition against the version read, and the same
retry under the row lock when another write got in first, whatever shortcut writes it (a user's
one-statement update, a group's member change at once). SQLite and PostgreSQL.

A second read-apply-write beside it would have to repeat both; these tests ask each kind of
write for both. tests/unit/test_one_read_apply_write.py checks that no second one appears.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.api.test_concurrent_requests import user, with_app
from tests.api.test_write_path import group_events
from tests.scim_client import GROUP_URN, PATCH_OP, Scim, assert_error

#: (resource, operations, answered with the resource?): each way a PATCH is written.
PATCHES: dict[str, tuple[str, list[dict[str, Any]], bool]] = {
    "user, one statement, 200": ("user", [{"op": "replace", "path": "title", "value": "t"}], True),
    "user, one statement, 204": ("user", [{"op": "replace", "path": "title", "value": "t"}], False),
    "group, member change at once, 204": (
        "group",
        [{"op": "add", "path": "members", "value": "MEMBER"}],
        False,
    ),
    "group, member change, 200": ("group", [{"op": "add", "path": "members", "value": "MEMBER"}], True),
    "group, Entra remove by value, 204": (
        "group",
        [{"op": "Remove", "path": "members", "value": [{"value": "OLD"}]}],
        False,
    ),
    "group, rename, 204": ("group", [{"op": "replace", "path": "displayName", "value": "New"}], False),
}


@pytest.mark.parametrize("kind", list(PATCHES))
def test_every_patch_checks_if_match_against_the_version_it_read(scim: Scim, kind: str) -> None:
    resource, operations, answered = PATCHES[kind]
    member = scim.create_user("member@example.com")
    old = scim.create_user("old@example.com")
    if resource == "user":
        path = f"/Users/{scim.create_user('patched@example.com')['id']}"
    else:
        path = f"/Groups/{scim.create_group('Old', [old['id']])['id']}"
    ops: list[dict[str, Any]] = []
    for op in operations:
        value = op.get("value")
        if value == "MEMBER":
            value = [{"value": member["id"]}]
        elif isinstance(value, list):
            value = [{"value": old["id"]}]
        ops.append({**op, "value": value})
    params: dict[str, str] | None = None
    if resource == "user" and not answered:
        scim.settings(patch_204_users=True)
    if resource == "group" and answered:
        params = {"excludedAttributes": "members"}  # asked for: a body, whatever the setting
    before = scim.get(path)
    assert before.headers["ETag"] == 'W/"1"'
    bump = scim.patch_ops(path, {"op": "replace", "path": "externalId", "value": "x"})
    assert bump.headers["ETag"] == 'W/"2"'
    stored = scim.get(path).json()

    stale = scim.patch_ops(path, *ops, headers={"If-Match": 'W/"1"'})
    assert_error(stale, 412)
    after_refusal = scim.get(path)
    assert after_refusal.headers["ETag"] == 'W/"2"'
    assert after_refusal.json() == stored

    fresh = scim.request(
        "PATCH",
        path,
        json={"schemas": [PATCH_OP], "Operations": ops},
        headers={"If-Match": 'W/"2"'},
        params=params,
    )
    assert fresh.status_code == (200 if answered else 204), fresh.text
    assert fresh.headers["ETag"] == 'W/"3"'
    unconditional = scim.patch_ops(path, {"op": "replace", "path": "externalId", "value": "y"})
    assert unconditional.headers["ETag"] == 'W/"4"'


def test_a_group_patch_without_if_match_answered_204_lands_once(scim: Scim) -> None:
    """The IdP's group push (no If-Match, 204): the member change at once, one version, its events."""
    member = scim.create_user("pushed@example.com")
    group = scim.create_group("Push", [])
    path = f"/Groups/{group['id']}"
    pushed = scim.patch_ops(path, {"op": "add", "path": "members", "value": [{"value": member["id"]}]})
    assert pushed.status_code == 204, pushed.text
    assert pushed.headers["ETag"] == 'W/"2"'
    again = scim.patch_ops(path, {"op": "add", "path": "members", "value": [{"value": member["id"]}]})
    assert again.headers["ETag"] == 'W/"2"'  # nothing changed: no version, no event
    assert [op for op, _ in group_events(scim, group["id"])] == ["created", "member_added"]


def test_parallel_patches_of_one_group_all_land(database_url: str, tenant_id: str) -> None:
    """Member pushes (written at once, without the lock), renames (the locked path) and a
    filtered removal (which needs the member list, so the lock) of one group, all at once: each
    lands exactly once, as one version and its events."""

    async def work(client: httpx.AsyncClient, engine: Any) -> None:
        users = await asyncio.gather(
            *(client.post("/Users", json=user(f"m{k}@example.com")) for k in range(9))
        )
        ids = [u.json()["id"] for u in users]
        created = await client.post(
            "/Groups",
            json={"schemas": [GROUP_URN], "displayName": "Busy", "members": [{"value": ids[0]}]},
        )
        path = f"/Groups/{created.json()['id']}"

        def patch(*ops: dict[str, Any]) -> Any:
            return client.patch(path, json={"schemas": [PATCH_OP], "Operations": list(ops)})

        adds = [patch({"op": "add", "path": "members", "value": [{"value": i}]}) for i in ids[1:]]
        renames = [patch({"op": "replace", "path": "displayName", "value": f"Busy {k}"}) for k in range(2)]
        removal = patch({"op": "remove", "path": f'members[value eq "{ids[0]}"]'})
        answers = await asyncio.gather(*adds, *renames, removal)
        assert {r.status_code for r in answers} == {204}, [r.text for r in answers]
        final = await client.get(path)
        assert sorted(m["value"] for m in final.json()["members"]) == sorted(ids[1:])
        assert final.headers["ETag"] == f'W/"{1 + len(answers)}"'
        assert sorted(int(r.headers["ETag"][3:-1]) for r in answers) == list(range(2, 2 + len(answers)))

    with_app(database_url, tenant_id, work)
