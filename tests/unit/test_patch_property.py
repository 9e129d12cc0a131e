"""Property tests: random operation sequences on random user documents."""

from __future__ import annotations

import copy
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from provisor.errors import ScimError
from provisor.patch import PATCH_OP_URN, PatchOptions, engine, patch_document
from provisor.schema.registry import ENTERPRISE_URN, default_registry

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
MULTI = ("emails", "phoneNumbers", "roles", "addresses")

text = st.text(alphabet="abcXYZ09 @.", min_size=0, max_size=6)
bools = st.one_of(st.booleans(), st.sampled_from(["True", "false", "FALSE"]))
kinds = st.sampled_from(["work", "home", "mobile", "other"])
element = st.fixed_dictionaries(
    {}, optional={"value": text, "type": kinds, "primary": bools, "display": text}
)
address = st.fixed_dictionaries({}, optional={"type": kinds, "locality": text, "primary": st.booleans()})


@st.composite
def user_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"userName": draw(st.text(alphabet="abc", min_size=1, max_size=5))}
    if draw(st.booleans()):
        doc["name"] = {"givenName": draw(st.text(alphabet="xy", min_size=1, max_size=3))}
    if draw(st.booleans()):
        doc["active"] = draw(st.booleans())
    for key in ("emails", "phoneNumbers", "roles"):
        items: list[dict[str, Any]] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"value": st.text(alphabet="pq", min_size=1, max_size=3)}, optional={"type": kinds}
                ),
                max_size=3,
            )
        )
        if items:
            if draw(st.booleans()):
                items[0]["primary"] = True
            doc[key] = items
    if draw(st.booleans()):
        doc[ENTERPRISE_URN] = {"employeeNumber": draw(st.text(alphabet="0123", min_size=1, max_size=3))}
    return doc


values = st.one_of(
    text,
    bools,
    element,
    st.lists(element, max_size=3),
    st.none(),
    address,
    st.integers(-2, 2),
    st.lists(address, max_size=2),
)
paths = st.one_of(
    st.sampled_from(
        [
            "userName",
            "title",
            "nickName",
            "active",
            "name",
            "name.givenName",
            "name.familyName",
            "emails",
            "phoneNumbers",
            "roles",
            "addresses",
            "emails.primary",
            "roles.value",
            "id",
            "meta.created",
            "groups",
            "nope",
            f"{ENTERPRISE_URN}:employeeNumber",
            f"{ENTERPRISE_URN}:manager",
            "manager",
            f"{ENTERPRISE_URN}:manager.displayName",
        ]
    ),
    st.builds(
        lambda a, k, s: f'{a}[type eq "{k}"]{s}',
        st.sampled_from(MULTI),
        kinds,
        st.sampled_from(["", ".value", ".primary", ".display", ".locality"]),
    ),
    st.builds(
        lambda a, v: f'{a}[value eq "{v}" or primary eq true]',
        st.sampled_from(MULTI),
        st.text(alphabet="pq", min_size=1, max_size=2),
    ),
)
operations = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Add", "Replace", "Remove"])},
    optional={"path": paths, "value": values},
) | st.builds(
    lambda op, v: {"op": op, "value": v},
    st.sampled_from(["add", "replace", "Replace"]),
    st.dictionaries(
        st.sampled_from(
            [
                "title",
                "name.givenName",
                "active",
                "emails",
                "schemas",
                "id",
                "unknownKey",
                f"{ENTERPRISE_URN}:department",
            ]
        ),
        values,
        max_size=3,
    ),
)


def no_empty_values(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value) and all(no_empty_values(v) for v in value.values())
    if isinstance(value, list):
        return bool(value) and all(no_empty_values(v) for v in value)
    return value is not None and value != ""


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_docs(), st.lists(operations, min_size=1, max_size=6), st.booleans(), st.booleans())
def test_random_patches_are_safe(
    doc: dict[str, Any], ops: list[dict[str, Any]], strict: bool, create: bool
) -> None:
    before = copy.deepcopy(doc)
    options = PatchOptions(strict=strict, create_missing_on_value_path=create)
    body = {"schemas": [PATCH_OP_URN], "Operations": ops}
    try:
        result = patch_document(REGISTRY, USER, doc, body, resource_id="u1", options=options)
    except ScimError:
        assert doc == before  # atomic: nothing of a failed request is visible
        return
    assert doc == before  # the input is never modified, even on success
    assert no_empty_values(result.doc) or result.doc == {}
    for key in MULTI:
        elements = result.doc.get(key, [])
        assert sum(1 for e in elements if e.get("primary") is True) <= 1
    assert "id" not in result.doc and "meta" not in result.doc and "groups" not in result.doc
    assert result.changed == (result.doc != before)


def _outcome(doc: dict[str, Any], body: dict[str, Any], options: PatchOptions) -> Any:
    try:
        return patch_document(REGISTRY, USER, doc, body, resource_id="u1", options=options).doc
    except ScimError as exc:
        return (exc.status, exc.scim_type)


def _prune_everything(patcher: engine._Patcher) -> None:
    patcher.doc = engine._pruned_doc(patcher.doc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_docs(), st.lists(operations, min_size=1, max_size=6), st.booleans(), st.booleans())
@example(  # emptying an extension: its section is the touched key, not the attribute's name
    {"userName": "a", ENTERPRISE_URN: {"employeeNumber": "1"}},
    [{"op": "remove", "path": f"{ENTERPRISE_URN}:employeeNumber"}],
    False,
    False,
)
@example(
    {"userName": "a", "name": {"givenName": "x"}, "emails": [{"value": "p", "type": "work"}]},
    [{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": 'emails[type eq "work"].value'}],
    True,
    False,
)
def test_pruning_only_the_touched_keys_equals_pruning_the_whole_document(
    doc: dict[str, Any], ops: list[dict[str, Any]], strict: bool, create: bool
) -> None:
    """After each operation the engine re-prunes only the top-level keys it wrote; the answer must
    be what re-pruning the whole document after every operation gives."""
    options = PatchOptions(strict=strict, create_missing_on_value_path=create)
    body = {"schemas": [PATCH_OP_URN], "Operations": ops}
    touched_only = _outcome(copy.deepcopy(doc), body, options)
    with mock.patch.object(engine._Patcher, "prune_touched", _prune_everything):
        everything = _outcome(copy.deepcopy(doc), body, options)
    assert touched_only == everything


@settings(max_examples=200, deadline=None)
@given(user_docs(), st.lists(operations, min_size=1, max_size=4))
def test_failing_last_operation_leaves_input_unchanged(
    doc: dict[str, Any], ops: list[dict[str, Any]]
) -> None:
    before = copy.deepcopy(doc)
    body = {"schemas": [PATCH_OP_URN], "Operations": [*ops, {"op": "replace", "path": "id", "value": "x"}]}
    try:
        patch_document(REGISTRY, USER, doc, body, resource_id="u1")
    except ScimError as exc:
        assert exc.status == 400
    else:  # pragma: no cover - replacing id always fails
        raise AssertionError("replacing id must fail")
    assert doc == before


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda ids: {"op": "add", "path": "members", "value": [{"value": i} for i in ids]},
                st.lists(st.sampled_from("abcd"), min_size=1, max_size=3),
            ),
            st.builds(
                lambda i: {"op": "remove", "path": f'members[value eq "{i}"]'}, st.sampled_from("abcd")
            ),
            st.builds(
                lambda ids: {"op": "Remove", "path": "members", "value": [{"value": i} for i in ids]},
                st.lists(st.sampled_from("abcd"), max_size=3),
            ),
            st.builds(
                lambda ids: {"op": "replace", "path": "members", "value": [{"value": i} for i in ids]},
                st.lists(st.sampled_from("abcd"), max_size=3),
            ),
            st.just({"op": "remove", "path": "members"}),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sets(st.sampled_from("abcd")),
)
def test_member_delta_matches_sequential_semantics(ops: list[dict[str, Any]], stored: set[str]) -> None:
    """Applying the folded delta to any stored set gives what applying the ops one by one gives."""
    expected = set(stored)
    for op in ops:
        ids = {m["value"] for m in op.get("value") or []}
        if op["op"] == "add":
            expected |= ids
        elif op["op"] == "replace":
            expected = ids
        elif "[" in op["path"]:
            expected.discard(op["path"].split('"')[1])
        elif op["op"] == "Remove":
            expected -= ids
        else:
            expected = set()
    group = REGISTRY.resource_type("Group")
    body = {"schemas": [PATCH_OP_URN], "Operations": ops}
    result = patch_document(REGISTRY, group, {"displayName": "g"}, body, resource_id="g1")
    delta = result.members
    actual = set(stored)
    if delta is not None:
        assert not (delta.remove_ids & {m["value"] for m in delta.add})
        if delta.remove_all:
            actual = set()
        if delta.replace_all is not None:
            actual = {m["value"] for m in delta.replace_all}
        actual |= {m["value"] for m in delta.add}
        actual -= delta.remove_ids
    assert actual == expected
