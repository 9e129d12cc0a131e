"""What a user write granted and revoked (service/assignments.py), the payload of its event."""

from __future__ import annotations

from provisor.service.assignments import assignment_changes

PRO = {"value": "lic-pro", "display": "Pro licence", "type": "License"}
BASIC = {"value": "lic-basic", "display": "Basic licence", "type": "License"}
ADMIN = {"value": "admin", "display": "Administrator"}


def test_no_assignments_before_or_after_is_no_change() -> None:
    assert assignment_changes({"userName": "a"}, {"userName": "b"}) is None


def test_grant_and_revoke_per_attribute() -> None:
    before = {"entitlements": [BASIC], "roles": [ADMIN]}
    after = {"entitlements": [PRO]}
    assert assignment_changes(before, after) == {
        "entitlements": {"granted": [PRO], "revoked": [BASIC]},
        "roles": {"granted": [], "revoked": [ADMIN]},
    }
    assert assignment_changes({}, {"roles": [ADMIN]}) == {"roles": {"granted": [ADMIN], "revoked": []}}


def test_display_and_order_alone_are_not_changes() -> None:
    renamed = {**PRO, "display": "Professional"}
    assert assignment_changes({"entitlements": [PRO, BASIC]}, {"entitlements": [BASIC, renamed]}) is None


def test_the_same_value_under_another_type_is_another_assignment() -> None:
    profile = {**PRO, "type": "Profile"}
    assert assignment_changes({"entitlements": [PRO]}, {"entitlements": [profile]}) == {
        "entitlements": {"granted": [profile], "revoked": [PRO]}
    }
