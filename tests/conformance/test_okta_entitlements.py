"""Okta's "SCIM 2.0 Entitlements Test" (Runscope export) against a live server, on SQLite and PostgreSQL.

The export has one step, `GET {{SCIMBaseURL}}{{EntitlementEndpoint}}?count=1&startIndex=1`, with the note
"Duplicate the request for multiple Entitlement Endpoints": it runs once per endpoint that `/ResourceTypes`
names with Okta's Entitlement or Role schema, each with entries defined (the suite expects non-empty
`Resources`). The catalogue is defined through the admin API, as an application would.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conformance.runscope import run_suite
from tests.conformance.suites import database_kind, load_suite, record_counts
from tests.live.server import live_server
from tests.scim_client import mint_token

SUITE = "okta-scim20-entitlements-test.runscope.json"
OKTA_SCHEMAS = ("urn:okta:scim:schemas:core:1.0:Entitlement", "urn:okta:scim:schemas:core:1.0:Role")


def test_okta_entitlements_suite(database_url: str, tenant_id: str, record_property: Any) -> None:
    suite = load_suite(SUITE)
    admin = mint_token(database_url, None, kind="admin", name="conformance-admin")
    with live_server(database_url, tenant_id) as server, httpx.Client(timeout=30) as client:
        root = server.base_url.removesuffix("/scim/v2")
        for kind, ids in (("Entitlement", ("lic-basic", "lic-pro")), ("Role", ("admin", "viewer"))):
            for entry_id in ids:
                defined = client.put(
                    f"{root}/admin/v1/entitlements/{kind}/{entry_id}",
                    params={"tenant": tenant_id},
                    headers={"Authorization": f"Bearer {admin}"},
                    json={
                        "displayName": entry_id.title(),
                        "type": "License" if kind == "Entitlement" else None,
                    },
                )
                assert defined.status_code == 201, defined.text
        types = client.get(f"{server.base_url}/ResourceTypes", headers=server.headers).json()["Resources"]
        endpoints = sorted(rt["endpoint"] for rt in types if rt["schema"] in OKTA_SCHEMAS)
        assert endpoints == ["/Entitlements", "/Roles"]
        passed = total = 0
        failures: list[str] = []
        for endpoint in endpoints:
            variables = {
                "SCIMBaseURL": server.base_url,
                "auth": f"Bearer {server.token}",
                "EntitlementEndpoint": endpoint,
            }
            report = run_suite(suite, client, variables)
            print(endpoint, report.summary())
            passed, total = passed + report.passed, total + report.total
            if report.failures:
                failures.append(f"{endpoint}: {report.format(only_failures=True)}")
    record_counts(record_property, "okta-entitlements", database_kind(database_url), passed, total)
    assert total == 2 * 6, "the export's assertions changed"
    assert not failures, "\n".join(failures)
