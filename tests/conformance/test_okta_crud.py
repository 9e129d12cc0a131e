"""Okta's "SCIM 2.0 CRUD Test", SCIM side: Okta's own traffic replayed for each Okta action.

The export drives a real Okta org (`{{oktaOrgUrl}}` steps). Here each of those steps is replaced by the SCIM
requests Okta sends for that action (conformance README, "What Okta sends"), and the export's own SCIM-side
steps (`{{SCIMUrl}}`) run unchanged with their assertions. Okta deactivates either with a PATCH
`active: false` or, for custom apps, with a PUT of the whole user: both are replayed. Group push is not part
of the export; it is replayed after it, request for request.
"""

from __future__ import annotations

import random
import string
from typing import Any

import httpx
import pytest

from tests.conformance.runscope import StepContext, run_suite
from tests.conformance.suites import database_kind, load_suite, record_counts
from tests.scim_client import GROUP_URN, PATCH_OP, USER_URN, Scim

SUITE = "okta-scim20-crud-test.runscope.json"
BASE = "http://testserver/scim/v2"
Checks = list[tuple[str, bool, str]]


def _check(checks: Checks, what: str, response: httpx.Response, *statuses: int) -> Any:
    ok = response.status_code in statuses
    checks.append(
        (
            f"replay: {what} -> {' or '.join(map(str, statuses))}",
            ok,
            f"{response.status_code} {response.text[:500]}",
        )
    )
    try:
        return response.json()
    except ValueError:
        return None


class OktaReplay:
    """The SCIM requests Okta sends for each Okta-side step of the CRUD export."""

    def __init__(self, scim: Scim, deactivate_with: str) -> None:
        self.scim = scim
        self.deactivate_with = deactivate_with
        self.json_headers = {"Content-Type": "application/json", "Accept": "application/scim+json"}

    def nothing_on_the_scim_side(self, ctx: StepContext) -> Checks:
        return []

    def create_okta_user(self, ctx: StepContext) -> Checks:
        ctx.variables["okta_add_userid"] = "00u" + "".join(random.choices(string.ascii_letters, k=17))
        return []

    def assign(self, ctx: StepContext) -> Checks:
        """First assignment: existence check by userName, then create."""
        v, checks = ctx.variables, []
        email = v["okta_user_email"]
        found = _check(
            checks,
            "existence check GET /Users?filter=userName eq",
            self.scim.get(
                "/Users", params={"filter": f'userName eq "{email}"', "startIndex": 1, "count": 100}
            ),
            200,
        )
        checks.append(("replay: existence check finds nothing", found.get("totalResults") == 0, str(found)))
        body = {
            "schemas": [USER_URN],
            "userName": email,
            "name": {"givenName": v["okta_user_firstname"], "familyName": v["okta_user_lastname"]},
            "emails": [{"primary": True, "value": email, "type": "work"}],
            "displayName": f"{v['okta_user_firstname']} {v['okta_user_lastname']}",
            "locale": "en-US",
            "externalId": v["okta_add_userid"],
            "groups": [],
            "password": "Kv7J2LEa-throwaway",
            "active": True,
        }
        _check(checks, "create POST /Users", self.scim.post("/Users", body, headers=self.json_headers), 201)
        return checks

    def _get_then_put(self, ctx: StepContext, what: str, **changes: Any) -> Checks:
        checks: Checks = []
        uid = ctx.variables["scim_id"]
        user = _check(checks, f"{what}: GET /Users/{{id}}", self.scim.get(f"/Users/{uid}"), 200)
        for key, value in changes.items():
            if key == "givenName":
                user["name"]["givenName"] = value
            else:
                user[key] = value
        _check(
            checks,
            f"{what}: PUT /Users/{{id}}",
            self.scim.put(f"/Users/{uid}", user, headers=self.json_headers),
            200,
        )
        return checks

    def update_profile(self, ctx: StepContext) -> Checks:
        return self._get_then_put(
            ctx, "profile update", givenName=ctx.variables["okta_user_firstname_update"]
        )

    def _set_active(self, ctx: StepContext, active: bool) -> Checks:
        if self.deactivate_with == "put":
            return self._get_then_put(ctx, f"active={active}", active=active)
        checks: Checks = []
        body = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": active}}]}
        response = self.scim.patch(f"/Users/{ctx.variables['scim_id']}", body, headers=self.json_headers)
        _check(checks, f"PATCH replace active={active}", response, 200, 204)
        return checks

    def deactivate(self, ctx: StepContext) -> Checks:
        return self._set_active(ctx, False)

    def reactivate(self, ctx: StepContext) -> Checks:
        return self._set_active(ctx, True)

    def reassign(self, ctx: StepContext) -> Checks:
        """Assigning an existing app user again pushes its profile (GET then PUT)."""
        return self._get_then_put(ctx, "re-assign", givenName=ctx.variables["okta_user_firstname_update"])

    def unassign(self, ctx: StepContext) -> Checks:
        """Okta never deletes: unassignment deactivates."""
        return self._set_active(ctx, False)


@pytest.mark.parametrize("deactivate_with", ["patch", "put"])
def test_okta_crud_suite(scim: Scim, deactivate_with: str, record_property: Any) -> None:
    suite = load_suite(SUITE)
    replay = OktaReplay(scim, deactivate_with)
    okta_steps = {
        i: s["url"]
        for i, s in enumerate(suite["steps"])
        if s.get("step_type") == "request" and "oktaOrgUrl" in s["url"]
    }
    overrides = {
        0: replay.nothing_on_the_scim_side,
        1: replay.create_okta_user,
        2: replay.assign,
        5: replay.update_profile,
        8: replay.deactivate,
        11: replay.reactivate,
        12: replay.reassign,
        16: replay.unassign,
    }
    assert set(okta_steps) == set(overrides), f"the export's Okta-side steps changed: {okta_steps}"
    suffix = "".join(random.choices(string.digits, k=6))
    variables = {
        "SCIMUrl": BASE,
        "SCIMAuth": f"Bearer {scim.token}",
        "okta_user_firstname": f"Crud{suffix}",
        "okta_user_lastname": f"Tester{suffix}",
        "okta_user_email": f"Crud.Tester{suffix}@atko.com",
        "okta_user_title": "Engineer",
        "okta_user_primaryphone": "+1 555 0100",
        "okta_user_firstname_update": f"Updated{suffix}",
    }
    report = run_suite(suite, scim.client, variables, overrides=overrides)
    kind = f"{database_kind(scim.database_url)}, deactivate by {deactivate_with}"
    record_counts(record_property, "okta-crud", kind, report.passed, report.total)
    scim_side = [r for r in report.results if not r.description.startswith("replay:")]
    assert len(scim_side) == 13, report.format()
    assert not report.failures, report.format(only_failures=True)


def _members(scim: Scim, gid: str) -> set[str]:
    response = scim.get(f"/Groups/{gid}")
    assert response.status_code == 200, response.text
    return {m["value"] for m in response.json().get("members", [])}


def test_okta_group_push(scim: Scim, record_property: Any) -> None:
    """Okta group push, request for request: create, look up, rename, add/remove/replace members, delete."""
    json_headers = {"Content-Type": "application/json"}
    users = [scim.create_user(f"push{i}@atko.com")["id"] for i in range(3)]
    checks = 0

    created = scim.post(
        "/Groups", {"schemas": [GROUP_URN], "displayName": "Okta Push", "members": []}, headers=json_headers
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    checks += 1

    found = scim.get(
        "/Groups", params={"filter": 'displayName eq "Okta Push"', "startIndex": 1, "count": 100}
    )
    assert found.status_code == 200, found.text
    assert [g["id"] for g in found.json()["Resources"]] == [gid], found.text
    checks += 1

    rename = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Okta Pushed"}}],
    }
    response = scim.patch(f"/Groups/{gid}", rename, headers=json_headers)
    assert response.status_code in (200, 204), response.text
    assert scim.get(f"/Groups/{gid}").json()["displayName"] == "Okta Pushed"
    checks += 1

    add = {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "add",
                "path": "members",
                "value": [{"value": u, "display": f"push{i}@atko.com"} for i, u in enumerate(users[:2])],
            }
        ],
    }
    response = scim.patch(f"/Groups/{gid}", add, headers=json_headers)
    assert response.status_code in (200, 204), response.text
    assert _members(scim, gid) == set(users[:2])
    checks += 1

    remove = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "remove", "path": f'members[value eq "{users[0]}"]'}],
    }
    response = scim.patch(f"/Groups/{gid}", remove, headers=json_headers)
    assert response.status_code in (200, 204), response.text
    assert _members(scim, gid) == {users[1]}
    checks += 1

    replace = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "replace", "path": "members", "value": [{"value": users[0]}, {"value": users[2]}]}
        ],
    }
    response = scim.patch(f"/Groups/{gid}", replace, headers=json_headers)
    assert response.status_code in (200, 204), response.text
    assert _members(scim, gid) == {users[0], users[2]}
    checks += 1

    deleted = scim.delete(f"/Groups/{gid}")
    assert deleted.status_code == 204, deleted.text
    assert scim.get(f"/Groups/{gid}").status_code == 404
    checks += 1
    record_counts(record_property, "okta-group-push", database_kind(scim.database_url), checks, 7)
