"""Provisor's documents checked against an independent model of RFC 7643/7644 (`scim2-models`,
the base of Python SCIM clients such as `scim2-client`), never against Provisor's own schema code.

A client built on that model rejects a whole document for one field it finds invalid (as it did
for `pagination.cursorTimeout: 0`), so every discovery document and one sample of every response
kind is validated here, on both databases.
"""

from __future__ import annotations

from typing import Any, Union

import httpx
import pytest
from scim2_models import (
    BulkResponse,
    Context,
    EnterpriseUser,
    Error,
    Group,
    ListResponse,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    User,
)

from tests.scim_client import ENTERPRISE_URN, GROUP_URN, USER_URN, Scim

#: The Users a list answers, with the enterprise extension Provisor's User resource type declares.
EnterpriseUserModel = User[EnterpriseUser]
AnyResource = Union[EnterpriseUserModel, Group]  # noqa: UP007 (scim2-models reads the typing.Union)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_service_provider_config_validates(scim: Scim) -> None:
    doc = ok(scim.get("/ServiceProviderConfig"))
    config = ServiceProviderConfig.model_validate(doc, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    assert config.patch is not None and config.patch.supported is True
    assert config.bulk is not None and config.bulk.max_operations == doc["bulk"]["maxOperations"]
    # RFC 9865 section 4: cursorTimeout is a positive number of seconds, or absent. Provisor's
    # cursors never expire (service/cursor.py: a signed position, no server state), so it is absent.
    pagination = doc["pagination"]
    assert "cursorTimeout" not in pagination
    assert pagination["cursor"] is True and pagination["index"] is True


def test_schemas_validate_as_a_list_and_one_by_one(scim: Scim) -> None:
    listing = ok(scim.get("/Schemas"))
    parsed = ListResponse[Schema].model_validate(listing, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    ids = {schema.id for schema in parsed.resources or []}
    assert {USER_URN, GROUP_URN, ENTERPRISE_URN} <= ids
    assert parsed.total_results == len(ids)
    for schema_id in ids:
        one = Schema.model_validate(
            ok(scim.get(f"/Schemas/{schema_id}")), scim_ctx=Context.RESOURCE_QUERY_RESPONSE
        )
        assert one.id == schema_id and one.attributes


def test_resource_types_validate_as_a_list_and_one_by_one(scim: Scim) -> None:
    listing = ok(scim.get("/ResourceTypes"))
    parsed = ListResponse[ResourceType].model_validate(listing, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    names = {rt.id for rt in parsed.resources or []}
    assert names == {"User", "Group", "Entitlement", "Role"}  # the last two for Okta (docs/entitlements.md)
    for name in names:
        one = ResourceType.model_validate(
            ok(scim.get(f"/ResourceTypes/{name}")), scim_ctx=Context.RESOURCE_QUERY_RESPONSE
        )
        assert one.id == name and one.endpoint == f"/{name}s"
        if name == "User":
            assert [ext.schema_ for ext in one.schema_extensions or []] == [ENTERPRISE_URN]


def sample_user(scim: Scim, user_name: str) -> dict[str, Any]:
    body: dict[str, Any] = ok(
        scim.post(
            "/Users",
            {
                "schemas": [USER_URN, ENTERPRISE_URN],
                "userName": user_name,
                "externalId": f"ext-{user_name}",
                "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
                "displayName": "Ada Lovelace",
                "active": True,
                "emails": [{"value": f"{user_name}@example.com", "type": "work", "primary": True}],
                "phoneNumbers": [{"value": "+44 20 7946 0000", "type": "work"}],
                "addresses": [{"type": "work", "locality": "London", "country": "GB"}],
                "roles": [{"value": "admin", "primary": True}],
                ENTERPRISE_URN: {"employeeNumber": "42", "department": "Analytics"},
                "password": "not-returned",
            },
        ),
        201,
    )
    return body


def test_a_user_with_the_enterprise_extension_validates(scim: Scim) -> None:
    created = sample_user(scim, "oracle-user")
    user = EnterpriseUserModel.model_validate(created, scim_ctx=Context.RESOURCE_CREATION_RESPONSE)
    assert user.user_name == "oracle-user" and user.id == created["id"]
    assert user[EnterpriseUser].employee_number == "42"
    assert user.meta is not None and user.meta.resource_type == "User"
    fetched = ok(scim.get(f"/Users/{created['id']}"))
    EnterpriseUserModel.model_validate(fetched, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    replaced = ok(
        scim.put(
            f"/Users/{created['id']}",
            {"schemas": [USER_URN], "userName": "oracle-user", ENTERPRISE_URN: {"department": "R&D"}},
        )
    )
    EnterpriseUserModel.model_validate(replaced, scim_ctx=Context.RESOURCE_REPLACEMENT_RESPONSE)


def test_a_group_with_members_and_the_lists_validate(scim: Scim) -> None:
    first = sample_user(scim, "oracle-a")
    second = sample_user(scim, "oracle-b")
    created = scim.create_group("Oracle group", [first["id"], second["id"]], externalId="g-1")
    group = Group.model_validate(created, scim_ctx=Context.RESOURCE_CREATION_RESPONSE)
    assert {m.value for m in group.members or []} == {first["id"], second["id"]}
    Group.model_validate(ok(scim.get(f"/Groups/{created['id']}")), scim_ctx=Context.RESOURCE_QUERY_RESPONSE)

    users = ok(scim.get("/Users", params={"count": 10}))
    parsed = ListResponse[AnyResource].model_validate(users, scim_ctx=Context.SEARCH_RESPONSE)
    assert parsed.total_results == 2 and len(parsed.resources or []) == 2
    groups = ok(scim.get("/Groups", params={"filter": 'displayName eq "Oracle group"'}))
    parsed = ListResponse[AnyResource].model_validate(groups, scim_ctx=Context.SEARCH_RESPONSE)
    assert [type(r) for r in parsed.resources or []] == [Group]
    page = ok(scim.get("/Users", params={"cursor": "", "count": 1}))
    ListResponse[AnyResource].model_validate(page, scim_ctx=Context.SEARCH_RESPONSE)
    searched = ok(scim.post("/.search", {"schemas": [SEARCH_REQUEST], "filter": 'userName sw "oracle"'}))
    ListResponse[AnyResource].model_validate(searched, scim_ctx=Context.SEARCH_RESPONSE)


SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def test_a_patch_answer_validates(scim: Scim) -> None:
    created = sample_user(scim, "oracle-patch")
    patched = ok(
        scim.patch_ops(
            f"/Users/{created['id']}",
            {"op": "replace", "path": "displayName", "value": "Patched"},
            {"op": "add", "path": "emails", "value": [{"value": "home@example.com", "type": "home"}]},
        )
    )
    user = EnterpriseUserModel.model_validate(patched, scim_ctx=Context.RESOURCE_PATCH_RESPONSE)
    assert user.display_name == "Patched"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/Users/no-such-id", None, 404),
        ("POST", "/Users", {"schemas": [USER_URN]}, 400),
        ("GET", "/Users", None, 400),  # with a malformed filter, below
        ("PATCH", "/Users/no-such-id", {"schemas": []}, 400),
    ],
)
def test_errors_validate(scim: Scim, method: str, path: str, body: Any, status: int) -> None:
    params = {"filter": "userName eq"} if method == "GET" and status == 400 else None
    kwargs: dict[str, Any] = {"params": params} if params else {}
    if body is not None:
        kwargs["json"] = body
    response = scim.request(method, path, **kwargs)
    error = Error.model_validate(ok(response, status))
    assert error.status == status and error.detail


BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


def test_a_bulk_response_validates(scim: Scim) -> None:
    user = sample_user(scim, "oracle-bulk")
    answer = ok(
        scim.post(
            "/Bulk",
            {
                "schemas": [BULK_REQUEST],
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "bulk-1"}},
                    {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "B"}},
                    {
                        "method": "PATCH",
                        "path": f"/Users/{user['id']}",
                        "data": {
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "title", "value": "T"}],
                        },
                    },
                    {"method": "DELETE", "path": "/Users/no-such-id"},
                ],
            },
        )
    )
    bulk = BulkResponse[AnyResource].model_validate(answer, scim_ctx=Context.BULK_RESPONSE)
    statuses = [op.status for op in bulk.operations or []]
    assert statuses == [201, 201, 200, 404]
