"""Okta's "SCIM 2.0 SPEC Test" (Runscope export) against a real `provisor serve`, on SQLite and PostgreSQL.

Every assertion of the export must pass, the optional Groups step (and its 600 ms response-time assertion)
included. Step 18's JavaScript is re-implemented in Python (`groups_endpoint_script`).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conformance.runscope import groups_endpoint_script, okta_spec_initial_variables, run_suite
from tests.conformance.suites import database_kind, load_suite, record_counts
from tests.live.server import live_server
from tests.scim_client import USER_URN

SUITE = "okta-scim20-spec-test.runscope.json"
GROUPS_STEP = 18


def test_okta_spec_suite(database_url: str, tenant_id: str, record_property: Any) -> None:
    suite = load_suite(SUITE)
    assert suite["steps"][GROUPS_STEP]["url"].endswith("/Groups"), "step numbering of the export changed"
    with live_server(database_url, tenant_id) as server, httpx.Client(timeout=30) as client:
        # Precondition of the suite: at least one user with givenName, familyName and an email.
        seeded = client.post(
            f"{server.base_url}/Users",
            headers=server.headers,
            json={
                "schemas": [USER_URN],
                "userName": "precondition.user@example.com",
                "name": {"givenName": "Pre", "familyName": "Condition"},
                "emails": [{"value": "precondition.user@example.com", "type": "work", "primary": True}],
                "active": True,
            },
        )
        assert seeded.status_code == 201, seeded.text
        variables = {
            "SCIMBaseURL": server.base_url,
            "auth": f"Bearer {server.token}",
            **okta_spec_initial_variables(),
        }
        report = run_suite(suite, client, variables, scripts={GROUPS_STEP: groups_endpoint_script})
    record_counts(record_property, "okta-spec", database_kind(database_url), report.passed, report.total)
    print(report.summary())
    assert report.total >= 50, report.format()
    assert not report.failures, report.format(only_failures=True)
