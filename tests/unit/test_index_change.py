"""A PUT or PATCH indexes only the attributes it changed (service/resources.py `_write`): the index
rows it then deletes and inserts must be exactly those that differ between the whole documents."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from provisor.schema.registry import ENTERPRISE_URN, default_registry
from provisor.service.resources import _changed_attributes, _only
from provisor.storage.indexing import index_rows

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
UNIQUE = frozenset({"userName"})

short = st.text(alphabet="aAbB", min_size=0, max_size=3)
email = st.fixed_dictionaries({}, optional={"value": short, "type": st.sampled_from(["work", "home"])})
attribute_values: dict[str, Any] = {
    "userName": short,
    "externalId": st.one_of(short, st.none()),
    "displayName": st.one_of(short, st.none()),
    "title": short,
    "active": st.booleans(),
    "emails": st.lists(email, max_size=3),
    "name": st.fixed_dictionaries({}, optional={"givenName": short}),
    ENTERPRISE_URN: st.fixed_dictionaries({}, optional={"employeeNumber": short}),
}
documents = st.fixed_dictionaries({}, optional=attribute_values)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[set[Any], set[Any]]:
    new, old = set(index_rows(USER, after, UNIQUE)), set(index_rows(USER, before, UNIQUE))
    return new - old, old - new


@given(documents, documents)
def test_the_changed_attributes_index_to_the_same_difference(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    changed = _changed_attributes(before, after)
    assert bool(changed) == (before != after)
    assert len(changed) == len(set(changed))
    assert _diff(_only(before, changed), _only(after, changed)) == _diff(before, after)


@given(documents, st.data())
def test_a_document_changed_in_a_few_attributes(before: dict[str, Any], data: st.DataObject) -> None:
    after = dict(before)
    for name in data.draw(st.lists(st.sampled_from(sorted(attribute_values)), max_size=3)):
        if data.draw(st.booleans()):
            after.pop(name, None)
        else:
            after[name] = data.draw(attribute_values[name])
    changed = _changed_attributes(before, after)
    absent = object()
    assert sorted(changed) == sorted(
        k for k in {*before, *after} if before.get(k, absent) != after.get(k, absent)
    )
    assert _diff(_only(before, changed), _only(after, changed)) == _diff(before, after)
