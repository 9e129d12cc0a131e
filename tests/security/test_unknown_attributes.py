"""Unknown attributes are accepted but never vanish: each request log row names them, and a
per-tenant count says how often and when last (both databases, over HTTP, and `provisor log tail`)."""

from __future__ import annotations

from typing import Any

import orjson
from click.testing import CliRunner

from provisor.cli import main
from tests.scim_client import ENTERPRISE_URN, GROUP_URN, USER_URN, Scim
from tests.security.helpers import admin_get

#: Attributes a User or Group knows, some of them ignored for other reasons (readOnly, never returned).
KNOWN = ("userName", "displayName", "name", "givenName", "emails", "password", "groups", "id", "meta")


def log_rows(scim: Scim) -> list[dict[str, Any]]:
    response = admin_get(scim, "/requests", tenant=scim.tenant_id)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["requests"]
    return rows


def counts(scim: Scim) -> dict[str, dict[str, Any]]:
    response = admin_get(scim, "/unknown-attributes", tenant=scim.tenant_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant"] == scim.tenant_id
    return {row["name"]: row for row in body["attributes"]}


def test_unknown_attributes_are_accepted_and_named_on_the_request_log(scim: Scim) -> None:
    created = scim.post(
        "/Users",
        {
            "schemas": [USER_URN],
            "userName": "typo@example.com",
            "favouriteColour": "blue",
            "name": {"givenName": "T", "middle": "X"},
            "emails": [{"value": "t@example.com", "label": "main"}],
            "urn:example:unknown:2.0:User": {"x": 1},
            ENTERPRISE_URN: {"department": "R&D", "deskNumber": "4"},
            "password": "known-and-never-stored",
            "id": "ignored-readonly",
            "groups": [],
        },
    )
    assert created.status_code == 201, created.text
    uid = created.json()["id"]
    assert "favouriteColour" not in created.json()
    replaced = scim.put(
        f"/Users/{uid}", {"schemas": [USER_URN], "userName": "typo@example.com", "shoeSize": 9}
    )
    assert replaced.status_code == 200, replaced.text
    patched = scim.patch_ops(
        f"/Users/{uid}",
        {"op": "Replace", "value": {"favouriteColour": "green", "displayName": "Typo", "nickNme": "T"}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["displayName"] == "Typo"
    group = scim.post("/Groups", {"schemas": [GROUP_URN], "displayName": "G", "colour": "red"})
    assert group.status_code == 201, group.text
    scim.get(f"/Users/{uid}")

    rows = log_rows(scim)
    assert [(r["method"], r["unknown_attributes"]) for r in rows] == [
        (
            "POST",
            [
                "favouriteColour",
                "urn:example:unknown:2.0:User",
                f"{ENTERPRISE_URN}:deskNumber",
                "name.middle",  # sub-attributes are seen when values are coerced, after the names
                "emails.label",
            ],
        ),
        ("PUT", ["shoeSize"]),
        ("PATCH", ["favouriteColour", "nickNme"]),
        ("POST", ["colour"]),
        ("GET", None),
    ]
    seen = counts(scim)
    assert {name: row["count"] for name, row in seen.items()} == {
        "favouriteColour": 2,
        "urn:example:unknown:2.0:User": 1,
        "name.middle": 1,
        "emails.label": 1,
        f"{ENTERPRISE_URN}:deskNumber": 1,
        "shoeSize": 1,
        "nickNme": 1,
        "colour": 1,
    }
    assert seen["favouriteColour"]["last_seen"] == rows[2]["at"]  # the PATCH, the later of the two
    assert next(iter(seen)) == "favouriteColour"  # the most frequent first
    for name in KNOWN:
        assert all(name not in (r["unknown_attributes"] or []) for r in rows), name
        assert name not in seen, name


def test_counts_survive_the_log_being_off_and_stay_per_tenant(scim: Scim) -> None:
    scim.settings(request_log="off")
    for _ in range(3):
        response = scim.post("/Users", {"schemas": [USER_URN], "userName": f"off-{_}", "extraField": 1})
        assert response.status_code == 201, response.text
    assert log_rows(scim) == []
    assert counts(scim)["extraField"]["count"] == 3
    other = admin_get(scim, "/unknown-attributes", tenant=f"{scim.tenant_id}-other")
    assert other.status_code == 200 and other.json()["attributes"] == []
    missing = admin_get(scim, "/unknown-attributes")
    assert missing.status_code == 400, missing.text
    tenant_token = {"Authorization": f"Bearer {scim.token}"}
    refused = scim.client.get(
        "/admin/v1/unknown-attributes", params={"tenant": scim.tenant_id}, headers=tenant_token
    )
    assert refused.status_code == 401  # a SCIM token is no admin token


def test_strict_patch_still_refuses_unknown_keys_and_records_no_count(scim: Scim) -> None:
    scim.settings(strict_patch=True)
    user = scim.create_user("strict-unknown@example.com")
    refused = scim.patch_ops(f"/Users/{user['id']}", {"op": "replace", "value": {"madeUp": "x"}})
    assert refused.status_code == 400, refused.text
    assert "madeUp" not in counts(scim)


def test_bulk_and_log_tail_show_the_names(scim: Scim) -> None:
    bulk = scim.post(
        "/Bulk",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": f"b{i}",
                    "data": {"userName": f"b{i}", "bulkOnly": i},
                }
                for i in range(2)
            ],
        },
    )
    assert bulk.status_code == 200, bulk.text
    assert log_rows(scim)[-1]["unknown_attributes"] == ["bulkOnly"]
    assert counts(scim)["bulkOnly"]["count"] == 1  # one request carried it
    runner = CliRunner()
    text = runner.invoke(
        main, ["log", "tail", "--tenant", scim.tenant_id, "--database-url", scim.database_url]
    )
    assert text.exit_code == 0, text.output
    assert text.output.rstrip().endswith("unknown: bulkOnly")
    as_json = runner.invoke(
        main, ["log", "tail", "--tenant", scim.tenant_id, "--json", "--database-url", scim.database_url]
    )
    assert orjson.loads(as_json.output.splitlines()[-1])["unknown_attributes"] == ["bulkOnly"]
