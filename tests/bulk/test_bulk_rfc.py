"""POST /Bulk: the examples of RFC 7644 section 3.7, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.bulk.helpers import bulk, id_of, member_ids, ok, patch_data, post_group, post_user
from tests.scim_client import USER_URN, Scim, assert_error


def test_discovery_advertises_bulk_with_limits(scim: Scim) -> None:
    config = scim.get("/ServiceProviderConfig").json()["bulk"]
    assert config == {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1_048_576}


def test_3_7_2_user_and_group_with_bulk_id_member(scim: Scim) -> None:
    results = ok(
        bulk(scim, post_user("qwerty", "Alice"), post_group("ytrewq", "Tour Guides", ["bulkId:qwerty"]))
    )
    assert [(r["method"], r["bulkId"], r["status"]) for r in results] == [
        ("POST", "qwerty", "201"),
        ("POST", "ytrewq", "201"),
    ]
    user_id, group_id = id_of(results[0]), id_of(results[1])
    assert results[0]["location"] == f"http://testserver/scim/v2/Users/{user_id}"
    assert results[1]["version"] == 'W/"1"'
    assert member_ids(scim, group_id) == {user_id}


def test_3_7_3_post_put_patch_delete(scim: Scim) -> None:
    bob = scim.create_user("Bob")
    dave = scim.create_user("Dave", nickName="D")
    eve = scim.create_user("Eve")
    results = ok(
        bulk(
            scim,
            post_user("qwerty", "Alice"),
            {
                "method": "PUT",
                "path": f"/Users/{bob['id']}",
                "version": bob["meta"]["version"],
                "data": {"schemas": [USER_URN], "id": bob["id"], "userName": "Bob", "displayName": "Bobby"},
            },
            {
                "method": "PATCH",
                "path": f"/Users/{dave['id']}",
                "version": dave["meta"]["version"],
                "data": patch_data(
                    {"op": "remove", "path": "nickName"},
                    {"op": "replace", "path": "userName", "value": "Dave2"},
                ),
            },
            {"method": "DELETE", "path": f"/Users/{eve['id']}", "version": eve["meta"]["version"]},
        )
    )
    assert [(r["method"], r["status"]) for r in results] == [
        ("POST", "201"),
        ("PUT", "200"),
        ("PATCH", "200"),
        ("DELETE", "204"),
    ]
    assert results[1] == {
        "method": "PUT",
        "location": f"http://testserver/scim/v2/Users/{bob['id']}",
        "version": 'W/"2"',
        "status": "200",
    }
    assert "response" not in results[0]
    assert scim.get(f"/Users/{bob['id']}").json()["displayName"] == "Bobby"
    patched = scim.get(f"/Users/{dave['id']}").json()
    assert patched["userName"] == "Dave2" and "nickName" not in patched
    assert scim.get(f"/Users/{eve['id']}").status_code == 404
    assert results[3]["location"].endswith(eve["id"]) and "version" not in results[3]


def test_3_7_3_fail_on_errors_stops_and_does_not_report_the_rest(scim: Scim) -> None:
    bob = scim.create_user("Bob")
    results = ok(
        bulk(
            scim,
            {"method": "POST", "path": "/Users", "bulkId": "qwerty", "data": {"schemas": [USER_URN]}},
            {"method": "DELETE", "path": f"/Users/{bob['id']}"},
            fail_on_errors=1,
        )
    )
    assert len(results) == 1
    assert results[0]["status"] == "400" and results[0]["bulkId"] == "qwerty"
    assert "location" not in results[0]
    error = results[0]["response"]
    assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert error["status"] == "400" and error["scimType"] == "invalidValue"
    assert scim.get(f"/Users/{bob['id']}").status_code == 200  # not performed


def test_3_7_3_every_operation_fails_and_each_is_reported(scim: Scim) -> None:
    bob = scim.create_user("Bob")
    results = ok(
        bulk(
            scim,
            {"method": "POST", "path": "/Users", "bulkId": "qwerty", "data": {"schemas": [USER_URN]}},
            {
                "method": "PUT",
                "path": f"/Users/{bob['id']}",
                "version": 'W/"99"',
                "data": {"schemas": [USER_URN], "userName": "Bob"},
            },
            {
                "method": "PATCH",
                "path": f"/Users/{bob['id']}",
                "version": 'W/"99"',
                "data": patch_data({"op": "replace", "path": "nickName", "value": "x"}),
            },
            {"method": "DELETE", "path": "/Users/b7c14771-226c-4d05-8860-134711653041", "version": 'W/"1"'},
        )
    )
    assert [r["status"] for r in results] == ["400", "412", "412", "404"]
    assert results[1]["response"]["scimType"] == "preconditionFailed"
    assert results[1]["location"].endswith(bob["id"])
    assert scim.get(f"/Users/{bob['id']}").json()["meta"]["version"] == 'W/"1"'


def test_3_7_1_circular_references_are_resolved(scim: Scim) -> None:
    results = ok(
        bulk(
            scim,
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "qwerty",
                "data": {"displayName": "Group A", "members": [{"type": "Group", "value": "bulkId:ytrewq"}]},
            },
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "ytrewq",
                "data": {"displayName": "Group B", "members": [{"type": "Group", "value": "bulkId:qwerty"}]},
            },
        )
    )
    assert [r["status"] for r in results] == ["201", "201"]
    a, b = id_of(results[0]), id_of(results[1])
    assert member_ids(scim, a) == {b}
    assert member_ids(scim, b) == {a}
    assert results[0]["version"] == scim.get(f"/Groups/{a}").json()["meta"]["version"]


def test_3_7_4_too_many_operations_is_413_and_writes_nothing(scim: Scim) -> None:
    ops = [post_user(f"u{i}", f"user{i}") for i in range(1001)]
    body = assert_error(bulk(scim, *ops), 413)
    assert "maxOperations" in body["detail"]
    assert scim.get("/Users").json()["totalResults"] == 0


def test_3_7_4_payload_too_large_is_413_and_writes_nothing(scim: Scim) -> None:
    ops = [post_user("u0", "user0"), post_user("big", "big", nickName="x" * 1_100_000)]
    body = assert_error(bulk(scim, *ops), 413)
    assert body["detail"] == "The size of the bulk operation exceeds the maxPayloadSize (1048576)."
    assert scim.get("/Users").json()["totalResults"] == 0


def test_payload_limit_applies_while_streaming_without_content_length(scim: Scim) -> None:
    chunk = b" " * 65536

    def body() -> object:
        yield b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[]'
        for _ in range(20):
            yield chunk
        yield b"}"

    response = scim.request(
        "POST", "/Bulk", content=body(), headers={"Content-Type": "application/scim+json"}
    )
    assert_error(response, 413)


def test_other_methods_are_405(scim: Scim) -> None:
    assert_error(scim.get("/Bulk"), 405)
    assert_error(scim.put("/Bulk", {}), 405)
    assert_error(scim.get("/Bulk/x"), 404)


def test_envelope_errors(scim: Scim) -> None:
    assert_error(scim.post("/Bulk", {"Operations": []}), 400, "invalidSyntax")
    assert_error(
        bulk(scim, post_user("same", "a"), post_user("same", "b")),
        400,
        "invalidValue",
    )
    assert scim.get("/Users").json()["totalResults"] == 0
