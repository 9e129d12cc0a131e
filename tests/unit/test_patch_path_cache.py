"""`resolve_patch_path` remembers bound PATCH paths; it must never answer for a different path."""

from __future__ import annotations

import pytest

from provisor.errors import ScimError
from provisor.filter import bind_path, parse_path, resolve_patch_path
from provisor.schema.registry import default_registry


def test_the_same_text_resolves_to_the_same_bound_path() -> None:
    registry = default_registry()
    user = registry.resource_type("User")
    first = resolve_patch_path('emails[type eq "work"].value', registry, user)
    assert resolve_patch_path('emails[type eq "work"].value', registry, user) is first
    assert first == bind_path(parse_path('emails[type eq "work"].value'), registry, user)


def test_texts_whose_asts_compare_equal_are_bound_separately() -> None:
    """In a parsed filter `eq 1` equals `eq true` (Python's 1 == True); binding tells them apart."""
    registry = default_registry()
    user = registry.resource_type("User")
    resolve_patch_path("emails[primary eq true]", registry, user)
    with pytest.raises(ScimError) as refused:
        resolve_patch_path("emails[primary eq 1]", registry, user)
    assert refused.value.scim_type == "invalidPath"


def test_errors_are_raised_every_time_and_types_are_kept_apart() -> None:
    registry = default_registry()
    user, group = registry.resource_type("User"), registry.resource_type("Group")
    for _ in range(2):
        with pytest.raises(ScimError):
            resolve_patch_path("noSuchAttribute", registry, user)
    assert resolve_patch_path("displayName", registry, group).attr.path is not None
    with pytest.raises(ScimError):
        resolve_patch_path("userName", registry, group)
    assert resolve_patch_path("userName", registry, user).attr.path is not None


def test_a_registry_sees_only_its_own_schemas() -> None:
    plain = default_registry()
    resolve_patch_path("title", plain, plain.resource_type("User"))
    other = default_registry()
    assert resolve_patch_path("title", other, other.resource_type("User")).attr.path is not None
    assert resolve_patch_path("title", other, other.resource_type("User")) is not resolve_patch_path(
        "title", plain, plain.resource_type("User")
    )
