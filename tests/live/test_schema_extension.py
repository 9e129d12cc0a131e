"""A custom schema extension given at start validates, stores, returns and is listed (both databases)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.live.server import live_server

EXTENSION = Path(__file__).parents[1] / "fixtures" / "acme_extension.json"
BADGE = "urn:acme:params:scim:schemas:extension:2.0:Badge"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_custom_extension_end_to_end(database_url: str, tenant_id: str) -> None:
    with (
        live_server(database_url, tenant_id, extra_args=("--schema-extension", str(EXTENSION))) as server,
        httpx.Client(base_url=server.base_url, headers=server.headers, timeout=10) as client,
    ):
        schema = client.get(f"/Schemas/{BADGE}").json()
        assert [a["name"] for a in schema["attributes"]] == [
            "badgeNumber",
            "clearance",
            "validUntil",
            "doors",
        ]
        rt = client.get("/ResourceTypes/User").json()
        assert {"schema": BADGE, "required": False} in rt["schemaExtensions"]

        created = client.post(
            "/Users",
            json={
                "schemas": [USER, BADGE],
                "userName": "badge.holder",
                BADGE: {
                    "badgeNumber": "B-7",
                    "clearance": "3",
                    "validUntil": "2030-01-01T10:00:00+02:00",
                    "doors": "lobby",
                    "unknownThing": 1,
                },
            },
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["schemas"] == [USER, BADGE]
        assert body[BADGE] == {
            "badgeNumber": "B-7",
            "clearance": 3,
            "validUntil": "2030-01-01T08:00:00.000000Z",
            "doors": ["lobby"],
        }
        uid = body["id"]

        bad = client.post("/Users", json={"userName": "bad.badge", BADGE: {"clearance": "high"}})
        assert bad.status_code == 400 and bad.json()["scimType"] == "invalidValue"

        found = client.get("/Users", params={"filter": f"{BADGE}:clearance ge 3"}).json()
        assert [r["id"] for r in found["Resources"]] == [uid]
        found = client.get(
            "/Users", params={"filter": f'{BADGE}:validUntil gt "2029-12-31T23:00:00-05:00"'}
        ).json()
        assert found["totalResults"] == 1

        patched = client.patch(
            f"/Users/{uid}",
            json={
                "schemas": [PATCH],
                "Operations": [
                    {"op": "add", "path": f"{BADGE}:doors", "value": ["vault"]},
                    {"op": "replace", "path": f"{BADGE}:badgeNumber", "value": "B-8"},
                ],
            },
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()[BADGE]["doors"] == ["lobby", "vault"]
        only = client.get(f"/Users/{uid}", params={"attributes": f"{BADGE}:badgeNumber"}).json()
        assert only[BADGE] == {"badgeNumber": "B-8"}


def test_a_bad_extension_file_stops_serve_and_migrate(tmp_path: Path) -> None:
    """`"type": "strng"` used to be accepted and advertised under /Schemas."""
    from tests.live.test_cli_errors import assert_short_error, run

    bad = tmp_path / "bad.json"
    doc = {
        "id": "urn:acme:params:scim:schemas:extension:2.0:Bad",
        "attributes": [{"name": "badge", "type": "strng"}],
    }
    bad.write_text(json.dumps(doc))
    url = f"sqlite:///{tmp_path / 'p.db'}"
    served = run("serve", "--port", "1", "--schema-extension", str(bad), "--database-url", url)
    assert_short_error(served, 2, str(bad), "'badge'", "strng")
    migrated = run("migrate", "--database-url", url, env={"PROVISOR_SCHEMA_EXTENSIONS": str(bad)})
    assert_short_error(migrated, 2, str(bad), "'badge'", "strng")
    assert not (tmp_path / "p.db").exists()
