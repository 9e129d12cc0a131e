"""Okta's entitlement sequence over real HTTP (`provisor serve`), on SQLite and PostgreSQL.

Okta's guide ("Build a SCIM 2.0 server with entitlements"): discover `/ResourceTypes` (and
`/Schemas`), read every entry of each entitlement endpoint, then assign and unassign through the
user's `entitlements` and `roles`. The catalogue is defined by the application (admin API, CLI).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisor.schema.registry import default_registry
from provisor.service.entitlements import CatalogueService
from provisor.storage.engine import create_engine
from tests.live.server import LiveServer, live_server
from tests.scim_client import ERROR_URN, PATCH_OP, USER_URN, mint_token, whole_feed

ENTITLEMENT_URN = "urn:okta:scim:schemas:core:1.0:Entitlement"
ROLE_URN = "urn:okta:scim:schemas:core:1.0:Role"

CATALOGUE = [
    ("Entitlement", "lic-basic", {"displayName": "Basic licence", "type": "License"}),
    (
        "Entitlement",
        "lic-pro",
        {"displayName": "Pro licence", "type": "License", "description": "All features"},
    ),
    ("Entitlement", "profile-ops", {"displayName": "Operations profile", "type": "Profile"}),
    ("Role", "admin", {"displayName": "Administrator"}),
    ("Role", "viewer", {"displayName": "Viewer"}),
]


class Okta:
    """The live server seen with a tenant's SCIM token and with an admin token."""

    def __init__(self, server: LiveServer, admin_token: str, tenant_id: str) -> None:
        self.server = server
        self.tenant_id = tenant_id
        self.scim = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30)
        root = server.base_url.removesuffix("/scim/v2")
        self.admin = httpx.Client(
            base_url=f"{root}/admin/v1",
            headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
            timeout=30,
        )

    def define(self, kind: str, entry_id: str, body: dict[str, Any]) -> httpx.Response:
        return self.admin.put(
            f"/entitlements/{kind}/{entry_id}", params={"tenant": self.tenant_id}, json=body
        )

    def user_events(self) -> list[dict[str, Any]]:
        return whole_feed(
            lambda params: self.admin.get("/events", params=params),
            tenant=self.tenant_id,
            type="User",
            limit=1000,
        )


@pytest.fixture
def okta(database_url: str, tenant_id: str) -> Iterator[Okta]:
    admin_token = mint_token(database_url, None, kind="admin", name="admin")
    with live_server(database_url, tenant_id) as server:
        client = Okta(server, admin_token, tenant_id)
        for kind, entry_id, body in CATALOGUE:
            defined = client.define(kind, entry_id, body)
            assert defined.status_code == 201, defined.text
        yield client


def _ids(page: dict[str, Any]) -> list[str]:
    return [r["id"] for r in page["Resources"]]


def _changes(event: dict[str, Any]) -> dict[str, Any] | None:
    changes: dict[str, Any] | None = (event["payload"] or {}).get("assignmentChanges")
    return changes


def _values(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["value"] for item in items)


def test_discovery_lists_both_resource_types_and_their_schemas(okta: Okta) -> None:
    types = okta.scim.get("/ResourceTypes").json()
    by_name = {rt["name"]: rt for rt in types["Resources"]}
    assert by_name["Entitlement"]["endpoint"] == "/Entitlements"
    assert by_name["Entitlement"]["schema"] == ENTITLEMENT_URN
    assert by_name["Role"]["endpoint"] == "/Roles"
    assert by_name["Role"]["schema"] == ROLE_URN
    assert okta.scim.get("/ResourceTypes/Role").json()["schema"] == ROLE_URN

    schemas = {s["id"] for s in okta.scim.get("/Schemas").json()["Resources"]}
    assert {ENTITLEMENT_URN, ROLE_URN} <= schemas
    entitlement = okta.scim.get(f"/Schemas/{ENTITLEMENT_URN}").json()
    names = {a["name"]: a for a in entitlement["attributes"]}
    assert set(names) == {"displayName", "type", "description"}
    assert all(a["mutability"] == "readOnly" for a in names.values())

    paths = okta.scim.get("/openapi.json").json()["paths"]
    assert set(paths["/Entitlements"]) == {"get"}
    assert set(paths["/Roles/{id}"]) == {"get", "parameters"}
    assert set(paths["/Roles/.search"]) == {"post"}


def test_lists_page_filter_and_read_one(okta: Okta) -> None:
    first = okta.scim.get("/Entitlements", params={"startIndex": 1, "count": 2}).json()
    assert (first["totalResults"], first["itemsPerPage"], first["startIndex"]) == (3, 2, 1)
    assert _ids(first) == ["lic-basic", "lic-pro"]
    second = okta.scim.get("/Entitlements", params={"startIndex": 3, "count": 2}).json()
    assert _ids(second) == ["profile-ops"]
    assert second["totalResults"] == 3
    assert okta.scim.get("/Entitlements", params={"count": 0}).json()["Resources"] == []

    licences = okta.scim.get("/Entitlements", params={"filter": 'type eq "license"'}).json()
    assert _ids(licences) == ["lic-basic", "lic-pro"]
    by_name = okta.scim.get("/Roles", params={"filter": 'displayName eq "Viewer"'}).json()
    assert (_ids(by_name), by_name["totalResults"]) == (["viewer"], 1)
    by_id = okta.scim.get("/Entitlements", params={"filter": 'id eq "lic-pro"', "count": 1}).json()
    assert _ids(by_id) == ["lic-pro"]
    paged = okta.scim.get("/Entitlements", params={"filter": 'type eq "License"', "startIndex": 2}).json()
    assert (_ids(paged), paged["totalResults"]) == (["lic-pro"], 2)
    sorted_desc = okta.scim.get("/Roles", params={"sortBy": "displayName", "sortOrder": "descending"}).json()
    assert _ids(sorted_desc) == ["viewer", "admin"]
    searched = okta.scim.post(
        "/Entitlements/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'type eq "Profile"',
        },
    ).json()
    assert _ids(searched) == ["profile-ops"]

    bad = okta.scim.get("/Entitlements", params={"filter": 'nosuch eq "x"'})
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidFilter"
    too_long = {"filter": 'displayName eq "' + "x" * 5000 + '"'}  # PROVISOR_MAX_FILTER_LENGTH is 4096
    bad_params = (
        {"filter": "displayName eq"},
        {"startIndex": "one"},
        {"sortBy": "nosuch"},
        {"cursor": ""},
        too_long,
    )
    for params in bad_params:
        refused = okta.scim.get("/Entitlements", params=params)
        assert refused.status_code == 400, (params, refused.text)
        assert refused.json()["schemas"] == [ERROR_URN]

    one = okta.scim.get("/Entitlements/lic-pro")
    assert one.status_code == 200
    assert one.json() == {
        "schemas": [ENTITLEMENT_URN],
        "id": "lic-pro",
        "displayName": "Pro licence",
        "type": "License",
        "description": "All features",
        "meta": one.json()["meta"],
    }
    assert one.json()["meta"]["resourceType"] == "Entitlement"
    assert one.json()["meta"]["location"].endswith("/Entitlements/lic-pro")
    assert okta.scim.get("/entitlements/lic-pro").status_code == 200  # paths are case-insensitive
    projected = okta.scim.get("/Roles/admin", params={"attributes": "displayName"}).json()
    assert set(projected) == {"schemas", "id", "displayName"}
    missing = okta.scim.get("/Entitlements/nope")
    assert missing.status_code == 404 and missing.json()["schemas"] == [ERROR_URN]


def test_writes_are_refused_and_change_nothing(okta: Okta) -> None:
    body = {"schemas": [ENTITLEMENT_URN], "id": "x", "displayName": "X"}
    patch = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": "Y"}]}
    refused = [
        okta.scim.post("/Entitlements", json=body),
        okta.scim.put("/Entitlements/lic-pro", json=body),
        okta.scim.patch("/Entitlements/lic-pro", json=patch),
        okta.scim.delete("/Entitlements/lic-pro"),
        okta.scim.post("/Roles", json=body),
        okta.scim.delete("/Roles/admin"),
    ]
    for response in refused:
        assert response.status_code == 405, response.text
        assert response.json()["schemas"] == [ERROR_URN]
        assert response.headers["allow"] == "GET"
    assert okta.scim.get("/Entitlements").json()["totalResults"] == 3
    assert okta.scim.get("/Entitlements/lic-pro").json()["displayName"] == "Pro licence"
    assert okta.scim.get("/Roles/admin").status_code == 200
    bulk = okta.scim.post(
        "/Bulk",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "POST", "path": "/Roles", "bulkId": "r", "data": body}],
        },
    )
    assert bulk.status_code == 400 or bulk.json()["Operations"][0]["status"].startswith("4"), bulk.text
    assert okta.scim.get("/Roles").json()["totalResults"] == 2


def test_okta_sequence_assign_unassign_read_back_with_events(okta: Okta) -> None:
    # Discover, then read every entry of each endpoint the resource types name.
    endpoints = {
        rt["name"]: rt["endpoint"]
        for rt in okta.scim.get("/ResourceTypes").json()["Resources"]
        if rt["schema"] in (ENTITLEMENT_URN, ROLE_URN)
    }
    listed = {name: _ids(okta.scim.get(endpoint).json()) for name, endpoint in endpoints.items()}
    assert listed == {"Entitlement": ["lic-basic", "lic-pro", "profile-ops"], "Role": ["admin", "viewer"]}

    # Assign on create.
    created = okta.scim.post(
        "/Users",
        json={
            "schemas": [USER_URN],
            "userName": "ada@example.com",
            "entitlements": [{"value": "lic-basic", "display": "Basic licence", "type": "License"}],
            "roles": [{"value": "admin", "display": "Administrator"}],
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    # Assign one more with PATCH add.
    added = okta.scim.patch(
        f"/Users/{user_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {
                    "op": "add",
                    "path": "entitlements",
                    "value": [{"value": "lic-pro", "display": "Pro licence", "type": "License"}],
                }
            ],
        },
    )
    assert added.status_code == 200, added.text
    assert _values(added.json()["entitlements"]) == ["lic-basic", "lic-pro"]

    # Replace the whole set with PUT (what Okta sends after "Customize entitlements").
    replaced = okta.scim.put(
        f"/Users/{user_id}",
        json={
            "schemas": [USER_URN],
            "userName": "ada@example.com",
            "entitlements": [
                {"value": "lic-pro", "display": "Pro licence", "type": "License"},
                {"value": "profile-ops", "display": "Operations profile", "type": "Profile"},
            ],
            "roles": [{"value": "viewer", "display": "Viewer"}],
        },
    )
    assert replaced.status_code == 200, replaced.text

    # Unassign with PATCH remove and a value filter.
    removed = okta.scim.patch(
        f"/Users/{user_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "remove", "path": 'entitlements[value eq "lic-pro"]'}],
        },
    )
    assert removed.status_code == 200, removed.text

    # A write that touches neither attribute carries no assignment changes.
    renamed = okta.scim.patch(
        f"/Users/{user_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "displayName", "value": "Ada"}],
        },
    )
    assert renamed.status_code == 200, renamed.text

    # Read back.
    back = okta.scim.get(f"/Users/{user_id}").json()
    assert back["entitlements"] == [
        {"value": "profile-ops", "display": "Operations profile", "type": "Profile"}
    ]
    assert back["roles"] == [{"value": "viewer", "display": "Viewer"}]
    by_filter = okta.scim.get("/Users", params={"filter": 'entitlements.value eq "profile-ops"'}).json()
    assert _ids(by_filter) == [user_id]

    # Every assignment and unassignment is an event, with what it granted and revoked.
    events = okta.user_events()
    assert [e["op"] for e in events] == ["created", "updated", "updated", "updated", "updated"]
    assert _changes(events[0]) is None  # the created payload already lists everything assigned
    assert _values(events[0]["payload"]["entitlements"]) == ["lic-basic"]
    patch_add = _changes(events[1])
    assert patch_add is not None and set(patch_add) == {"entitlements"}
    assert _values(patch_add["entitlements"]["granted"]) == ["lic-pro"]
    assert patch_add["entitlements"]["revoked"] == []
    put = _changes(events[2])
    assert put is not None
    assert _values(put["entitlements"]["granted"]) == ["profile-ops"]
    assert _values(put["entitlements"]["revoked"]) == ["lic-basic"]
    assert _values(put["roles"]["granted"]) == ["viewer"]
    assert _values(put["roles"]["revoked"]) == ["admin"]
    unassigned = _changes(events[3])
    assert unassigned == {
        "entitlements": {
            "granted": [],
            "revoked": [{"value": "lic-pro", "display": "Pro licence", "type": "License"}],
        }
    }
    assert _changes(events[4]) is None
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]


def test_another_tenant_sees_nothing(okta: Okta, database_url: str) -> None:
    other = f"{okta.tenant_id}-other"
    token = mint_token(database_url, other)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=okta.server.base_url, headers=headers, timeout=30) as client:
        page = client.get("/Entitlements").json()
        assert (page["totalResults"], page["Resources"]) == (0, [])
        assert client.get("/Roles", params={"filter": 'id eq "admin"'}).json()["totalResults"] == 0
        assert client.get("/Entitlements/lic-pro").status_code == 404
        # The resource types are there all the same (empty lists are what Okta expects).
        names = {rt["name"] for rt in client.get("/ResourceTypes").json()["Resources"]}
        assert {"Entitlement", "Role"} <= names
    listed = okta.admin.get("/entitlements", params={"tenant": other}).json()
    assert listed == {"entitlements": []}


def test_admin_api_defines_replaces_removes_and_refuses_bad_input(okta: Okta) -> None:
    params = {"tenant": okta.tenant_id}
    replaced = okta.define("Role", "viewer", {"displayName": "Read-only", "description": "Sees everything"})
    assert replaced.status_code == 200
    assert replaced.json()["displayName"] == "Read-only"
    assert okta.scim.get("/Roles/viewer").json()["displayName"] == "Read-only"

    listing = okta.admin.get("/entitlements/roles", params=params).json()["entitlements"]
    assert [(e["resourceType"], e["id"]) for e in listing] == [("Role", "admin"), ("Role", "viewer")]
    assert len(okta.admin.get("/entitlements", params=params).json()["entitlements"]) == 5
    assert okta.admin.get("/entitlements/Role/admin", params=params).json()["displayName"] == "Administrator"

    for bad_kind, bad_body in (
        ("Role", {}),
        ("Role", {"displayName": ""}),
        ("Role", {"displayName": 5}),
        ("Role", {"displayName": "x" * 501}),
        ("Group", {"displayName": "X"}),
    ):
        refused = okta.define(bad_kind, "new-one", bad_body)
        assert refused.status_code == 400, refused.text
    assert okta.scim.get("/Roles/new-one").status_code == 404
    for bad_id in ("a%2Fb", "tab%09id", "%20"):
        refused = okta.admin.put(f"/entitlements/Role/{bad_id}", params=params, json={"displayName": "X"})
        assert refused.status_code in (400, 404), refused.text
    assert okta.admin.get("/entitlements/roles", params=params).json()["entitlements"] == listing
    not_json = okta.admin.put("/entitlements/Role/x", params=params, content=b"{not json")
    assert not_json.status_code == 400
    no_tenant = okta.admin.put("/entitlements/Role/x", json={"displayName": "X"})
    assert no_tenant.status_code == 400
    unknown_tenant = okta.admin.put(
        "/entitlements/Role/x", params={"tenant": f"{okta.tenant_id}-nope"}, json={"displayName": "X"}
    )
    assert unknown_tenant.status_code == 404
    scim_token = okta.scim.headers["Authorization"]
    as_scim = okta.admin.get("/entitlements", params=params, headers={"Authorization": scim_token})
    assert as_scim.status_code == 401

    assert okta.admin.delete("/entitlements/Role/viewer", params=params).status_code == 204
    assert okta.admin.delete("/entitlements/Role/viewer", params=params).status_code == 404
    assert _ids(okta.scim.get("/Roles").json()) == ["admin"]


def test_cli_defines_lists_and_removes(okta: Okta, database_url: str) -> None:
    provisor = str(Path(sys.executable).with_name("provisor"))
    base = ["--database-url", database_url]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [provisor, "entitlements", *args, *base], capture_output=True, text=True, check=False
        )

    tenant = ["--tenant", okta.tenant_id]
    defined = run(
        "define",
        *tenant,
        "--type",
        "entitlement",
        "seat-x",
        "--display-name",
        "Seat X",
        "--entitlement-type",
        "Seat",
    )
    assert defined.returncode == 0, defined.stderr
    assert defined.stdout.strip() == "defined Entitlement seat-x (Seat X)"
    assert okta.scim.get("/Entitlements/seat-x").json()["type"] == "Seat"

    listed = run("list", *tenant, "--type", "Entitlement")
    assert listed.returncode == 0
    assert [line.split("\t")[1] for line in listed.stdout.splitlines()] == [
        "lic-basic",
        "lic-pro",
        "profile-ops",
        "seat-x",
    ]

    assert run("remove", *tenant, "--type", "Entitlement", "seat-x").returncode == 0
    again = run("remove", *tenant, "--type", "Entitlement", "seat-x")
    assert again.returncode == 2
    assert "no Entitlement seat-x" in again.stderr and "Traceback" not in again.stderr
    unknown = run("define", "--tenant", "nobody-here", "--type", "Role", "r", "--display-name", "R")
    assert unknown.returncode == 2 and "no tenant nobody-here" in unknown.stderr
    bad_type = run("list", *tenant, "--type", "Group")
    assert bad_type.returncode == 2
    assert okta.scim.get("/Entitlements/seat-x").status_code == 404


def test_deleting_the_tenant_deletes_its_catalogue(okta: Okta, database_url: str) -> None:
    provisor = str(Path(sys.executable).with_name("provisor"))
    base = ["--database-url", database_url]
    deleted = subprocess.run(
        [provisor, "tenant", "delete", okta.tenant_id, "--force", *base],
        capture_output=True,
        text=True,
        check=False,
    )
    assert deleted.returncode == 0, deleted.stderr
    created = subprocess.run(
        [provisor, "tenant", "create", okta.tenant_id, *base], capture_output=True, text=True, check=False
    )
    assert created.returncode == 0, created.stderr
    assert okta.admin.get("/entitlements", params={"tenant": okta.tenant_id}).json() == {"entitlements": []}


async def publish_roles(database_url: str, tenant: str) -> None:
    """The snippet of docs/entitlements.md ("Defining the catalogue"), verbatim."""
    engine = create_engine(database_url)
    try:
        catalogue = CatalogueService(engine, default_registry())
        await catalogue.define(tenant, "Role", "auditor", "Auditor", description="Reads the audit log")
        await catalogue.remove(tenant, "Role", "legacy-admin")  # False when there was none
    finally:
        await engine.dispose()


def test_host_app_publishes_from_python(okta: Okta, database_url: str) -> None:
    asyncio.run(publish_roles(database_url, okta.tenant_id))
    auditor = okta.scim.get("/Roles/auditor").json()
    assert (auditor["displayName"], auditor["description"]) == ("Auditor", "Reads the audit log")
    assert _ids(okta.scim.get("/Roles").json()) == ["admin", "auditor", "viewer"]
