"""PATCH through the API on both databases: RFC examples, IdP dialects, atomicity, and a property test
that the stored result equals the in-memory engine's result for the same operations."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisor.patch import NormaliseContext, PatchOperation, apply_patch, normalise
from provisor.schema.registry import default_registry
from tests.scim_client import ENTERPRISE_URN, Scim, assert_error

REGISTRY = default_registry()
USER_RT = REGISTRY.resource_type("User")
OUTPUT_ONLY = ("schemas", "id", "meta", "groups")

words = st.text(alphabet="abcdefgXYZ 0123456789.-@", min_size=1, max_size=12).filter(
    lambda s: s.strip() != ""
)
email_types = st.sampled_from(["work", "home", "other"])


def op_strategy() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda v: {"op": "replace", "path": "displayName", "value": v}, words),
        st.builds(lambda v: {"op": "add", "path": "title", "value": v}, words),
        st.just({"op": "remove", "path": "title"}),
        st.builds(lambda v: {"op": "replace", "path": "name.givenName", "value": v}, words),
        st.builds(lambda v: {"op": "add", "value": {"name.familyName": v, "nickName": v}}, words),
        st.builds(
            lambda b: {"op": "Replace", "path": "active", "value": "True" if b else "False"}, st.booleans()
        ),
        st.builds(
            lambda t, v, p: {"op": "add", "path": "emails", "value": [{"type": t, "value": v, "primary": p}]},
            email_types,
            words,
            st.booleans(),
        ),
        st.builds(
            lambda t, v: {"op": "replace", "path": f'emails[type eq "{t}"].value', "value": v},
            email_types,
            words,
        ),
        st.builds(lambda t: {"op": "remove", "path": f'emails[type eq "{t}"]'}, email_types),
        st.builds(lambda v: {"op": "replace", "path": f"{ENTERPRISE_URN}:employeeNumber", "value": v}, words),
        st.builds(lambda v: {"op": "add", "value": {f"{ENTERPRISE_URN}:department": v}}, words),
        st.builds(lambda v: {"op": "Add", "path": "manager", "value": [{"$ref": None, "value": v}]}, words),
        st.just({"op": "Replace", "path": f"{ENTERPRISE_URN}:manager", "value": ""}),
    )


def stored_form(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in OUTPUT_ONLY}


def engine_result(doc: dict[str, Any], uid: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    operations = [PatchOperation(o["op"], o.get("path"), o.get("value")) for o in ops]
    normalised = normalise(operations, NormaliseContext(REGISTRY, USER_RT, uid))
    return apply_patch(REGISTRY, USER_RT, doc, normalised, resource_id=uid).doc


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op_strategy(), min_size=1, max_size=6), fail=st.booleans())
def test_api_patch_equals_engine_and_failures_change_nothing(
    scim: Scim, ops: list[dict[str, Any]], fail: bool
) -> None:
    user = scim.create_user(
        f"prop-{uuid.uuid4().hex}", emails=[{"type": "work", "value": "w@example.com", "primary": True}]
    )
    uid = user["id"]
    before_bytes = scim.get(f"/Users/{uid}").content
    if fail:
        bad = [*ops, {"op": "remove", "path": "userName"}]
        assert_error(scim.patch_ops(f"/Users/{uid}", *bad), 400, "mutability")
        assert scim.get(f"/Users/{uid}").content == before_bytes  # byte-for-byte unchanged
        return
    expected = engine_result(stored_form(user), uid, ops)
    response = scim.patch_ops(f"/Users/{uid}", *ops)
    assert response.status_code == 200, response.text
    assert stored_form(response.json()) == expected
    assert stored_form(scim.get(f"/Users/{uid}").json()) == expected
    changed = expected != stored_form(user)
    assert response.json()["meta"]["version"] == ('W/"2"' if changed else 'W/"1"')


def test_rfc_examples_through_the_api(scim: Scim) -> None:
    uid = scim.create_user(
        "rfc.user",
        emails=[
            {"type": "work", "value": "bjensen@example.com"},
            {"type": "home", "value": "babs@jensen.org"},
        ],
        addresses=[
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "postalCode": "91608",
            }
        ],
    )["id"]
    r = scim.patch_ops(
        f"/Users/{uid}",
        {
            "op": "add",
            "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickName": "Babs"},
        },
    )
    body = r.json()
    assert body["nickName"] == "Babs" and len(body["emails"]) == 2  # equal value not duplicated
    r = scim.patch_ops(
        f"/Users/{uid}", {"op": "remove", "path": 'emails[type eq "work" and value ew "example.com"]'}
    )
    assert [e["type"] for e in r.json()["emails"]] == ["home"]
    r = scim.patch_ops(
        f"/Users/{uid}",
        {"op": "replace", "path": 'addresses[type eq "work"].streetAddress', "value": "1010 Broadway Ave"},
    )
    assert r.json()["addresses"][0]["streetAddress"] == "1010 Broadway Ave"
    assert r.json()["addresses"][0]["locality"] == "Hollywood"
    r = scim.patch_ops(
        f"/Users/{uid}",
        {
            "op": "replace",
            "path": 'addresses[type eq "work"]',
            "value": {"type": "work", "locality": "Burbank"},
        },
    )
    assert r.json()["addresses"][0]["locality"] == "Burbank"


def test_error_scim_types(scim: Scim) -> None:
    uid = scim.create_user("err.user")["id"]
    op = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    assert_error(
        scim.patch(
            f"/Users/{uid}",
            {"schemas": ["urn:wrong"], "Operations": [{"op": "add", "path": "title", "value": "x"}]},
        ),
        400,
        "invalidSyntax",
    )
    assert_error(scim.patch(f"/Users/{uid}", {"schemas": [op], "Operations": []}), 400, "invalidSyntax")
    assert_error(scim.patch_ops(f"/Users/{uid}", {"op": "explode", "path": "title"}), 400, "invalidSyntax")
    assert_error(
        scim.patch_ops(f"/Users/{uid}", {"op": "add", "path": "nosuch", "value": 1}), 400, "invalidPath"
    )
    assert_error(
        scim.patch_ops(f"/Users/{uid}", {"op": "add", "path": "emails[type eq ", "value": 1}),
        400,
        "invalidPath",
    )
    assert_error(scim.patch_ops(f"/Users/{uid}", {"op": "remove"}), 400, "noTarget")
    assert_error(
        scim.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "id", "value": "x"}), 400, "mutability"
    )
    assert_error(
        scim.patch_ops(f"/Users/{uid}", {"op": "replace", "path": "active", "value": "maybe"}),
        400,
        "invalidValue",
    )
    scim.settings(strict_patch=True)
    assert_error(
        scim.patch_ops(
            f"/Users/{uid}", {"op": "replace", "path": 'emails[type eq "work"].value', "value": "x@y.z"}
        ),
        400,
        "noTarget",
    )
    assert scim.get(f"/Users/{uid}").json()["meta"]["version"] == 'W/"1"'


def test_entra_dialect_end_to_end(scim: Scim) -> None:
    manager = scim.create_user("the.manager")["id"]
    uid = scim.create_user("entra.user", active=True)["id"]
    r = scim.patch_ops(
        f"/Users/{uid}",
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Replace", "value": {"name.givenName": "Given", f"{ENTERPRISE_URN}:employeeNumber": "E1"}},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "work@example.com"},
        {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555"},
        {"op": "Add", "path": "manager", "value": [{"$ref": None, "value": manager}]},
        {
            "op": "Add",
            "path": "roles",
            "value": [{"value": '{"id":"7a3e","value":"Admin","displayName":"Admin"}'}],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] is False and body["name"]["givenName"] == "Given"
    assert body["emails"] == [{"type": "work", "value": "work@example.com"}]
    assert body["phoneNumbers"] == [{"type": "mobile", "value": "+1 555"}]
    assert body[ENTERPRISE_URN] == {"employeeNumber": "E1", "manager": {"value": manager}}
    assert body["roles"] == [{"value": "Admin", "display": "Admin"}]
    r = scim.patch_ops(
        f"/Users/{uid}", {"op": "Replace", "path": f"{ENTERPRISE_URN}:manager", "value": {"value": ""}}
    )
    assert "manager" not in r.json()[ENTERPRISE_URN]


def test_patch_204_setting_and_if_match(scim: Scim) -> None:
    user = scim.create_user("etag.user")
    uid = user["id"]
    assert_error(
        scim.patch_ops(
            f"/Users/{uid}", {"op": "add", "path": "title", "value": "x"}, headers={"If-Match": 'W/"9"'}
        ),
        412,
        "preconditionFailed",
    )
    ok = scim.patch_ops(
        f"/Users/{uid}",
        {"op": "add", "path": "title", "value": "x"},
        headers={"If-Match": user["meta"]["version"]},
    )
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    projected = scim.patch_ops(f"/Users/{uid}?attributes=title", {"op": "add", "path": "title", "value": "y"})
    assert set(projected.json()) == {"schemas", "id", "title"}
    scim.settings(patch_204_users=True)
    silent = scim.patch_ops(f"/Users/{uid}", {"op": "add", "path": "title", "value": "z"})
    assert silent.status_code == 204 and silent.headers["etag"] == 'W/"4"'
