"""The Users resource over HTTP, on SQLite and PostgreSQL (issue: foundation)."""

from __future__ import annotations

import orjson

from tests.scim_client import ENTERPRISE_URN, USER_URN, Scim, assert_error


def test_create_returns_201_with_location_etag_and_meta(scim: Scim) -> None:
    response = scim.post(
        "/Users",
        {
            "schemas": [USER_URN],
            "userName": "Alice@Example.com",
            "id": "forged",
            "meta": {"version": "x"},
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": "a@example.com"}],
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["content-type"].startswith("application/scim+json")
    assert body["id"] != "forged" and len(body["id"]) == 36
    assert body["userName"] == "Alice@Example.com"  # case kept
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"] == f"http://testserver/scim/v2/Users/{body['id']}"
    assert response.headers["location"] == meta["location"]
    assert response.headers["etag"] == meta["version"] == 'W/"1"'
    assert meta["created"] == meta["lastModified"] and meta["created"].endswith("Z")
    assert body["schemas"] == [USER_URN]


def test_required_username_missing_is_invalid_value(scim: Scim) -> None:
    assert_error(
        scim.post("/Users", {"schemas": [USER_URN], "name": {"givenName": "x"}}), 400, "invalidValue"
    )
    assert scim.get("/Users").json()["totalResults"] == 0


def test_duplicate_username_ignoring_case_is_409(scim: Scim) -> None:
    scim.create_user("bob")
    assert_error(scim.post("/Users", {"schemas": [USER_URN], "userName": "BOB"}), 409, "uniqueness")
    listed = scim.get("/Users").json()
    assert listed["totalResults"] == 1


def test_same_username_in_two_tenants_is_fine(scim: Scim, app_clients: object) -> None:
    from tests.scim_client import mint_token

    scim.create_user("shared")
    other = Scim(scim.client, mint_token(scim.database_url, scim.tenant_id + "-b"), scim.database_url, "x")
    assert other.post("/Users", {"userName": "shared"}).status_code == 201
    assert other.get("/Users").json()["totalResults"] == 1
    assert scim.get("/Users").json()["totalResults"] == 1


def test_get_and_404(scim: Scim) -> None:
    user = scim.create_user("carol")
    got = scim.get(f"/Users/{user['id']}")
    assert got.status_code == 200 and got.json() == user
    body = assert_error(scim.get("/Users/does-not-exist"), 404)
    assert "does-not-exist" in body["detail"]


def test_password_is_never_returned_and_not_stored(scim: Scim) -> None:
    user = scim.create_user("dave", password="t1meMa$heen")
    assert "password" not in user
    assert "password" not in scim.get(f"/Users/{user['id']}", params={"attributes": "password"}).json()
    assert b"t1meMa" not in orjson.dumps(scim.get("/Users").json())


def test_attributes_and_excluded_attributes(scim: Scim) -> None:
    user = scim.create_user(
        "erin",
        name={"givenName": "Erin", "familyName": "E"},
        emails=[{"value": "e@x.org", "type": "work"}],
        **{ENTERPRISE_URN: {"employeeNumber": "42", "department": "R&D"}},
    )
    uid = user["id"]
    only = scim.get(f"/Users/{uid}", params={"attributes": "userName,name.givenName"}).json()
    assert set(only) == {"schemas", "id", "userName", "name"}
    assert only["name"] == {"givenName": "Erin"}
    ext = scim.get(f"/Users/{uid}", params={"attributes": f"{ENTERPRISE_URN}:employeeNumber"}).json()
    assert ext[ENTERPRISE_URN] == {"employeeNumber": "42"}
    without = scim.get(f"/Users/{uid}", params={"excludedAttributes": "emails,name.familyName,meta"}).json()
    assert "emails" not in without and "meta" not in without
    assert without["name"] == {"givenName": "Erin"} and without["id"] == uid


def test_put_replaces_clears_omitted_and_ignores_read_only(scim: Scim) -> None:
    user = scim.create_user("frank", displayName="Frank", title="Boss", active=True)
    uid = user["id"]
    response = scim.put(
        f"/Users/{uid}",
        {
            "schemas": [USER_URN],
            "id": uid,
            "userName": "frank",
            "displayName": "Franklin",
            "meta": {"created": "1999-01-01T00:00:00Z"},
            "groups": [{"value": "x"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["displayName"] == "Franklin"
    assert "title" not in body and "active" not in body and "groups" not in body
    assert body["meta"]["created"] == user["meta"]["created"]
    assert body["meta"]["version"] == 'W/"2"' == response.headers["etag"]
    assert scim.get(f"/Users/{uid}").json() == body


def test_put_unknown_user_is_404(scim: Scim) -> None:
    assert_error(scim.put("/Users/nope", {"userName": "x"}), 404)


def test_delete_then_404_twice(scim: Scim) -> None:
    uid = scim.create_user("gina")["id"]
    response = scim.delete(f"/Users/{uid}")
    assert response.status_code == 204 and response.content == b""
    assert_error(scim.get(f"/Users/{uid}"), 404)
    assert_error(scim.delete(f"/Users/{uid}"), 404)
    assert scim.post("/Users", {"userName": "gina"}).status_code == 201  # the name is free again


def test_soft_delete_keeps_user_readable_and_listable(scim: Scim) -> None:
    uid = scim.create_user("hank", active=True)["id"]
    response = scim.patch_ops(f"/Users/{uid}", {"op": "replace", "value": {"active": False}})
    assert response.status_code == 200 and response.json()["active"] is False
    assert scim.get(f"/Users/{uid}").json()["active"] is False
    found = scim.get("/Users", params={"filter": 'userName eq "hank"'}).json()
    assert found["totalResults"] == 1 and found["Resources"][0]["active"] is False


def test_list_pagination_and_totals(scim: Scim) -> None:
    ids = [scim.create_user(f"user{i:02d}")["id"] for i in range(7)]
    page = scim.get("/Users", params={"startIndex": 3, "count": 2}).json()
    assert page["totalResults"] == 7 and page["startIndex"] == 3 and page["itemsPerPage"] == 2
    assert [r["id"] for r in page["Resources"]] == ids[2:4]
    totals = scim.get("/Users", params={"count": 0}).json()
    assert totals["totalResults"] == 7 and totals["Resources"] == [] and totals["itemsPerPage"] == 0
    clamped = scim.get("/Users", params={"startIndex": -5, "count": 100}).json()
    assert clamped["startIndex"] == 1 and len(clamped["Resources"]) == 7
    beyond = scim.get("/Users", params={"startIndex": 50}).json()
    assert beyond["Resources"] == [] and beyond["totalResults"] == 7
    assert_error(scim.get("/Users", params={"count": "many"}), 400, "invalidValue")


def test_empty_list_is_200_with_empty_resources(scim: Scim) -> None:
    body = scim.get("/Users", params={"filter": 'userName eq "4a1b2c3d-0000-1111-2222-333344445555"'}).json()
    assert body == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }


def test_username_filter_is_case_insensitive_and_external_id_exact(scim: Scim) -> None:
    scim.create_user("Ivy.Lower@Example.com", externalId="Ext-1")
    hit = scim.get("/Users", params={"filter": 'userName eq "ivy.lower@EXAMPLE.COM"'}).json()
    assert hit["totalResults"] == 1
    assert hit["Resources"][0]["userName"] == "Ivy.Lower@Example.com"
    assert scim.get("/Users", params={"filter": 'externalId eq "Ext-1"'}).json()["totalResults"] == 1
    assert scim.get("/Users", params={"filter": 'externalId eq "ext-1"'}).json()["totalResults"] == 0


def test_lenient_input_from_real_idps(scim: Scim) -> None:
    response = scim.request(
        "POST",
        "/Users",
        content=orjson.dumps(
            {
                "schemas": [USER_URN],
                "USERNAME": "jack",
                "Active": "True",
                "title": None,
                "name": {"GivenName": "Jack"},
                "favouriteColour": "blue",
                "emails": [{"value": "j@x.org", "Primary": "false"}],
            }
        ),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["userName"] == "jack" and body["active"] is True
    assert body["name"] == {"givenName": "Jack"}
    assert body["emails"] == [{"value": "j@x.org", "primary": False}]
    assert "title" not in body and "favouriteColour" not in body
    got = scim.get(f"/Users/{body['id']}", headers={"Content-Type": "application/scim+json"})
    assert got.status_code == 200


def test_etags_if_match_and_if_none_match(scim: Scim) -> None:
    user = scim.create_user("kate")
    uid, tag = user["id"], user["meta"]["version"]
    assert scim.get(f"/Users/{uid}", headers={"If-None-Match": tag}).status_code == 304
    assert scim.get(f"/Users/{uid}", headers={"If-None-Match": 'W/"999"'}).status_code == 200
    assert_error(
        scim.put(f"/Users/{uid}", {"userName": "kate2"}, headers={"If-Match": 'W/"7"'}),
        412,
        "preconditionFailed",
    )
    assert scim.get(f"/Users/{uid}").json()["userName"] == "kate"
    ok = scim.put(f"/Users/{uid}", {"userName": "kate2"}, headers={"If-Match": tag})
    assert ok.status_code == 200
    assert_error(scim.delete(f"/Users/{uid}", headers={"If-Match": tag}), 412)
    assert scim.delete(f"/Users/{uid}", headers={"If-Match": ok.headers["etag"]}).status_code == 204


def test_immutable_and_mutability_on_put(scim: Scim) -> None:
    group_member = scim.create_user("liam")
    response = scim.put(f"/Users/{group_member['id']}", {"userName": "liam", "id": "other-id"})
    assert response.status_code == 200  # id is readOnly: ignored, not an error
    assert response.json()["id"] == group_member["id"]


def test_errors_are_scim_bodies(scim: Scim) -> None:
    assert_error(scim.get("/Nope"), 404)
    assert_error(scim.get("/Users/a/b"), 404)
    assert_error(scim.request("PATCH", "/Users"), 405)
    assert_error(
        scim.request("POST", "/Users", content=b"{not json", headers={"Content-Type": "application/json"}),
        400,
        "invalidSyntax",
    )
    assert_error(
        scim.request("POST", "/Users", content=b"[1]", headers={"Content-Type": "application/json"}),
        400,
        "invalidSyntax",
    )
    big = b'{"userName":"' + b"x" * 1_100_000 + b'"}'
    assert_error(
        scim.request("POST", "/Users", content=big, headers={"Content-Type": "application/json"}), 413
    )
    assert_error(
        scim.request("POST", "/Users", content=b"userName=x", headers={"Content-Type": "text/plain"}), 415
    )
    assert scim.get("/Users").json()["totalResults"] == 0
    outside = scim.client.get("/nowhere")
    assert outside.status_code == 404 and outside.json()["status"] == "404"


def test_resource_paths_are_case_insensitive(scim: Scim) -> None:
    uid = scim.create_user("mia")["id"]
    assert scim.get(f"/users/{uid}").status_code == 200
    assert scim.get("/USERS").json()["totalResults"] == 1
    assert scim.get("/serviceproviderconfig").status_code == 200


def test_authentication(scim: Scim) -> None:
    client = scim.client
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer"},
    ):
        response = client.get("/scim/v2/Users", headers=headers)
        assert_error(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_revoked_token_stops_working(scim: Scim) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from provisor.storage.auth_cache import auth_write
    from provisor.storage.tokens import list_tokens, revoke
    from tests.scim_client import changed_elsewhere, mint_token, run_db

    token = mint_token(scim.database_url, scim.tenant_id, name="to-revoke")
    headers = {"Authorization": f"Bearer {token}"}
    assert scim.client.get("/scim/v2/Users", headers=headers).status_code == 200

    async def work(engine: AsyncEngine) -> None:
        async with auth_write(engine) as conn:  # as `provisor token revoke` does
            for info in await list_tokens(conn):
                if info.name == "to-revoke" and info.tenant_id == scim.tenant_id:
                    assert await revoke(conn, info.id)

    changed_elsewhere(scim.client, lambda: run_db(scim.database_url, work))
    assert_error(scim.client.get("/scim/v2/Users", headers=headers), 401)
