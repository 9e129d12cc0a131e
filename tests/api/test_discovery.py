"""Discovery endpoints (RFC 7644 section 4)."""

from __future__ import annotations

import pytest

from tests.scim_client import ENTERPRISE_URN, GROUP_URN, USER_URN, Scim, assert_error


def test_service_provider_config_is_truthful(scim: Scim) -> None:
    body = scim.get("/ServiceProviderConfig").json()
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert body["patch"]["supported"] is True
    assert body["filter"]["supported"] is True and body["filter"]["maxResults"] == 1000
    assert body["etag"]["supported"] is True and body["sort"]["supported"] is True
    assert body["changePassword"]["supported"] is False
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types(scim: Scim) -> None:
    listed = scim.get("/ResourceTypes").json()
    assert listed["totalResults"] == 4  # User, Group and the Entitlement/Role catalogues
    by_name = {rt["name"]: rt for rt in listed["Resources"]}
    assert by_name["User"]["endpoint"] == "/Users" and by_name["User"]["schema"] == USER_URN
    assert by_name["User"]["schemaExtensions"] == [{"schema": ENTERPRISE_URN, "required": False}]
    assert by_name["Group"]["schema"] == GROUP_URN
    assert by_name["Entitlement"]["endpoint"] == "/Entitlements"
    assert by_name["Role"]["endpoint"] == "/Roles"
    one = scim.get("/ResourceTypes/User").json()
    assert one["id"] == "User" and one["meta"]["location"].endswith("/ResourceTypes/User")
    assert_error(scim.get("/ResourceTypes/Printer"), 404)


def test_schemas(scim: Scim) -> None:
    listed = scim.get("/Schemas").json()
    ids = {s["id"] for s in listed["Resources"]}
    assert {USER_URN, GROUP_URN, ENTERPRISE_URN} <= ids
    user = scim.get(f"/Schemas/{USER_URN}").json()
    attrs = {a["name"]: a for a in user["attributes"]}
    assert attrs["userName"]["required"] is True and attrs["userName"]["uniqueness"] == "server"
    assert attrs["password"]["returned"] == "never"
    assert_error(scim.get("/Schemas/urn:nope"), 404)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_discovery_is_read_only(scim: Scim, method: str) -> None:
    for path in ("/ServiceProviderConfig", "/Schemas", "/ResourceTypes"):
        assert_error(scim.request(method, path, json={}), 405)
