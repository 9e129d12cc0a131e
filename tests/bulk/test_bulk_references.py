"""bulkId references: ordering, PATCH values, paths, unknown and failed references, batching."""

from __future__ import annotations

from tests.bulk.helpers import bulk, id_of, member_ids, ok, patch_data, post_group, post_user
from tests.scim_client import Scim


def test_group_before_user_runs_user_first(scim: Scim) -> None:
    results = ok(bulk(scim, post_group("g", "Team", ["bulkId:u"]), post_user("u", "alice")))
    assert [r["bulkId"] for r in results] == ["g", "u"]  # reported in request order
    assert [r["status"] for r in results] == ["201", "201"]
    assert member_ids(scim, id_of(results[0])) == {id_of(results[1])}


def test_chain_user_group_patch_referencing_created_user(scim: Scim) -> None:
    existing = scim.create_group("Existing")
    results = ok(
        bulk(
            scim,
            {
                "method": "patch",
                "path": f"/groups/{existing['id']}",
                "data": patch_data({"op": "add", "path": "members", "value": [{"value": "bulkId:u2"}]}),
            },
            {
                "method": "PATCH",
                "path": "/Users/bulkId:u1",
                "data": patch_data({"op": "replace", "path": "displayName", "value": "Alice L."}),
            },
            post_user("u1", "alice"),
            post_user(
                "u2",
                "bob",
                **{
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                        "manager": {"value": "bulkId:u1"}
                    }
                },
            ),
            post_group("g", "Both", ["bulkId:u1", "bulkId:u2"]),
        )
    )
    assert [r["status"] for r in results] == ["204", "200", "201", "201", "201"]
    alice, bob, group = id_of(results[2]), id_of(results[3]), id_of(results[4])
    assert results[1]["location"].endswith(alice)
    assert scim.get(f"/Users/{alice}").json()["displayName"] == "Alice L."
    manager = scim.get(f"/Users/{bob}").json()["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
    assert manager["manager"]["value"] == alice
    assert member_ids(scim, existing["id"]) == {bob}
    assert member_ids(scim, group) == {alice, bob}


def test_bulk_id_in_patch_filter_path(scim: Scim) -> None:
    results = ok(
        bulk(
            scim,
            post_user("u", "alice"),
            post_group("g", "Team", ["bulkId:u"]),
            {
                "method": "PATCH",
                "path": "/Groups/bulkId:g",
                "data": patch_data({"op": "remove", "path": 'members[value eq "bulkId:u"]'}),
            },
        )
    )
    assert [r["status"] for r in results] == ["201", "201", "204"]
    assert member_ids(scim, id_of(results[1])) == set()


def test_unknown_bulk_id_fails_only_that_operation(scim: Scim) -> None:
    results = ok(bulk(scim, post_group("g", "Team", ["bulkId:nobody"]), post_user("u", "alice")))
    assert results[0]["status"] == "409"
    assert results[0]["response"]["scimType"] == "invalidValue"
    assert "nobody" in results[0]["response"]["detail"]
    assert results[1]["status"] == "201"
    assert scim.get("/Groups").json()["totalResults"] == 0


def test_reference_to_a_failed_post_fails(scim: Scim) -> None:
    scim.create_user("taken")
    results = ok(bulk(scim, post_user("u", "TAKEN"), post_group("g", "Team", ["bulkId:u"])))
    assert results[0]["status"] == "409" and results[0]["response"]["scimType"] == "uniqueness"
    assert results[1]["status"] == "409" and "failed" in results[1]["response"]["detail"]


def test_unresolvable_cycle_is_409_and_undone(scim: Scim) -> None:
    results = ok(
        bulk(
            scim,
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "self",
                "data": {"displayName": "Self", "members": [{"value": "bulkId:self"}]},
            },
            post_user("u", "alice"),
        )
    )
    assert results[0]["status"] == "409"
    assert "circular" in results[0]["response"]["detail"]
    assert results[1]["status"] == "201"
    assert scim.get("/Groups").json()["totalResults"] == 0


def test_three_way_cycle_with_a_dependent(scim: Scim) -> None:
    def group(bulk_id: str, name: str, member: str) -> dict[str, object]:
        return {
            "method": "POST",
            "path": "/Groups",
            "bulkId": bulk_id,
            "data": {"displayName": name, "members": [{"value": f"bulkId:{member}"}]},
        }

    results = ok(
        bulk(
            scim,
            post_group("top", "Top", ["bulkId:a"]),
            group("a", "A", "b"),
            group("b", "B", "c"),
            group("c", "C", "a"),
        )
    )
    assert [r["status"] for r in results] == ["201"] * 4
    top, a, b, c = (id_of(r) for r in results)
    assert member_ids(scim, a) == {b} and member_ids(scim, b) == {c} and member_ids(scim, c) == {a}
    assert member_ids(scim, top) == {a}


def test_batched_creates_fall_back_per_operation_on_conflict(scim: Scim) -> None:
    ops = [post_user(f"u{i}", f"user{i}") for i in range(5)]
    ops[3] = post_user("u3", "USER1")
    results = ok(bulk(scim, *ops))
    assert [r["status"] for r in results] == ["201", "201", "201", "409", "201"]
    assert scim.get("/Users").json()["totalResults"] == 4


def test_fail_on_errors_counts_across_a_batch(scim: Scim) -> None:
    ops = [post_user(f"u{i}", f"user{i}") for i in range(6)]
    ops[1] = post_user("u1", "user0")
    ops[3] = post_user("u3", "user2")
    results = ok(bulk(scim, *ops, fail_on_errors=2))
    assert [r["status"] for r in results] == ["201", "409", "201", "409"]
    assert scim.get("/Users").json()["totalResults"] == 2


def test_earlier_successes_stay_when_a_later_operation_fails(scim: Scim) -> None:
    results = ok(bulk(scim, post_user("a", "alice"), {"method": "DELETE", "path": "/Users/missing"}))
    assert [r["status"] for r in results] == ["201", "404"]
    assert scim.get(f"/Users/{id_of(results[0])}").status_code == 200


def test_malformed_operation_fails_alone(scim: Scim) -> None:
    results = ok(
        bulk(
            scim,
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Widgets", "data": {}},
            {"method": "PUT", "path": "/Users"},
            post_user("u", "alice"),
        )
    )
    assert [r["status"] for r in results] == ["400", "400", "400", "201"]


def test_a_thousand_creates_in_one_bulk(scim: Scim) -> None:
    import time

    ops = [post_user(f"u{i}", f"user{i}@example.com") for i in range(1000)]
    start = time.perf_counter()
    results = ok(bulk(scim, *ops))
    assert time.perf_counter() - start < 20
    assert len(results) == 1000 and {r["status"] for r in results} == {"201"}
    assert scim.get("/Users", params={"count": 0}).json()["totalResults"] == 1000
