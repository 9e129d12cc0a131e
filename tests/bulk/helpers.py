"""Helpers for the Bulk tests: request envelopes and result lookups."""

from __future__ import annotations

from typing import Any

import httpx

from tests.scim_client import GROUP_URN, PATCH_OP, USER_URN, Scim

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


def bulk(scim: Scim, *ops: dict[str, Any], fail_on_errors: int | None = None) -> httpx.Response:
    body: dict[str, Any] = {"schemas": [BULK_REQUEST], "Operations": list(ops)}
    if fail_on_errors is not None:
        body["failOnErrors"] = fail_on_errors
    return scim.post("/Bulk", body)


def ok(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schemas"] == [BULK_RESPONSE]
    results: list[dict[str, Any]] = body["Operations"]
    return results


def post_user(bulk_id: str, user_name: str, **attrs: Any) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": "/Users",
        "bulkId": bulk_id,
        "data": {"schemas": [USER_URN], "userName": user_name, **attrs},
    }


def post_group(bulk_id: str, name: str, members: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"schemas": [GROUP_URN], "displayName": name}
    if members is not None:
        data["members"] = [{"type": "User", "value": m} for m in members]
    return {"method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": data}


def patch_data(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(ops)}


def id_of(result: dict[str, Any]) -> str:
    location: str = result["location"]
    return location.rsplit("/", 1)[1]


def member_ids(scim: Scim, group_id: str) -> set[str]:
    group = scim.get(f"/Groups/{group_id}").json()
    return {m["value"] for m in group.get("members", [])}
