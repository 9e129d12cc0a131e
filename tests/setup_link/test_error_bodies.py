"""What the setup page's error list relies on: in the default `metadata` request-log mode an error
response's SCIM error document is kept, and nothing else is (both databases)."""

from __future__ import annotations

import orjson

from tests.scim_client import USER_URN, Scim
from tests.security.helpers import admin_get


def test_metadata_mode_keeps_error_documents_only(scim: Scim) -> None:
    user = {"schemas": [USER_URN], "userName": "dup@example.com", "password": "hunter2"}
    assert scim.post("/Users", user).status_code == 201
    assert scim.post("/Users", user).status_code == 409
    rows = admin_get(scim, "/requests", tenant=scim.tenant_id).json()["requests"]
    created, duplicate = rows
    assert created["response_body"] is None and created["request_body"] is None
    assert duplicate["request_body"] is None  # the password is in the request, never stored here
    error = orjson.loads(duplicate["response_body"])
    assert error["status"] == "409" and error["scimType"] == "uniqueness" and error["detail"]
    assert "hunter2" not in orjson.dumps(rows).decode()


def test_off_mode_keeps_no_error_either(scim: Scim) -> None:
    scim.settings(request_log="off")
    assert scim.get("/Users/missing").status_code == 404
    assert admin_get(scim, "/requests", tenant=scim.tenant_id).json()["requests"] == []
