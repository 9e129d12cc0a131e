"""Binder and Python evaluator: the semantics table every back end must agree with."""

from __future__ import annotations

from typing import Any

import pytest

from provisor.errors import ScimError
from provisor.filter import bind, bind_path, matches, matches_element, parse_filter, parse_path
from provisor.filter.ast import Compare, Not, Present
from provisor.schema.registry import ENTERPRISE_URN, default_registry

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
GROUP = REGISTRY.resource_type("Group")

BJENSEN: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_URN],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "Bjensen-ext",
    "userName": "BJensen",
    "name": {"familyName": "Jensen", "givenName": "Barbara"},
    "title": "Tour Guide",
    "active": True,
    "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": True},
        {"value": "babs@jensen.org", "type": "home"},
    ],
    "groups": [{"value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides"}],
    ENTERPRISE_URN: {"employeeNumber": "701984", "manager": {"value": "26118915"}},
    "meta": {
        "resourceType": "User",
        "created": "2010-01-23T04:56:22.000000Z",
        "lastModified": "2011-05-13T04:42:34.000000Z",
        "version": 'W/"3"',
    },
}
EMPTY: dict[str, Any] = {"id": "e", "userName": "empty", "title": "", "emails": [], "name": {}}


def ok(text: str, resource: dict[str, Any] = BJENSEN) -> bool:
    return matches(bind(parse_filter(text), REGISTRY, USER), resource)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "bjensen"', True),  # caseExact false
        ('externalId eq "bjensen-ext"', False),  # caseExact true
        ('externalId eq "Bjensen-ext"', True),
        ('id eq "2819C223-7F76-453A-919D-413861904646"', False),
        ('name.familyName co "ENS"', True),
        ('userName sw "bj"', True),
        ('userName ew "SEN"', True),
        ('userName gt "bj"', True),
        ('userName lt "BJ"', False),
        ('userName ge "bjensen"', True),
        ('userName le "bjensen"', True),
        ('emails co "example.com"', True),  # complex -> value sub-attribute
        ('emails.type eq "home"', True),  # any value matches
        ('emails.type ne "home"', True),  # ...including for ne
        ('emails[type eq "home" and value co "example.com"]', False),  # same element
        ('emails[type eq "work" and value co "example.com"]', True),
        ('emails[type eq "work"].value ew ".COM"', True),
        ("emails[primary eq true]", True),
        ('emails[not (type eq "work")]', True),
        ("active eq true", True),
        ('active eq "True"', True),  # string booleans coerced
        ("active ne false", True),
        ("not (active eq true)", False),
        ("title pr", True),
        ("nickName pr", False),
        ('nickName ne "x"', True),  # ne of a missing attribute is true
        ('not (nickName eq "x")', True),
        ("nickName eq null", True),
        ("title ne null", True),
        ('meta.lastModified gt "2011-05-13T04:42:33Z"', True),
        ('meta.lastModified gt "2011-05-13T04:42:34Z"', False),
        ('meta.lastModified ge "2011-05-13T06:42:34+02:00"', True),  # offsets compare as instants
        ("meta.Created lt 2010-01-22T21:56:22.0000001-07:00", False),
        ("meta.Created lt 2010-01-22T21:56:22.000001-07:00", True),
        ('meta.version eq "W/\\"3\\""', True),
        ('meta.resourceType eq "User"', True),
        (f"{ENTERPRISE_URN}:employeeNumber eq 701984", True),
        (f'{ENTERPRISE_URN}:manager.value eq "26118915"', True),
        (f"{ENTERPRISE_URN}:manager pr", True),
        ('groups.value eq "E9E30DBA-F08F-4109-8486-D5C6A331660A"', True),
        ("USERNAME EQ BJENSEN AND Emails.Value CO example.com", True),
        (f'schemas eq "{ENTERPRISE_URN}"', True),
        ('schemas eq "urn:example:other"', False),
    ],
)
def test_semantics(text: str, expected: bool) -> None:
    assert ok(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("title pr", False),  # "" is not present
        ("emails pr", False),  # [] is not present
        ("name pr", False),  # {} is not present
        ('title eq ""', True),
        ('title ne ""', False),
        ("title eq null", True),
        ('emails.value ne "x"', True),  # no values at all: ne is true
        ('emails[type eq "work"]', False),
        ('not (emails[type eq "work"])', True),
        ('emails co ""', False),
        ('userName co ""', True),
    ],
)
def test_empty_values(text: str, expected: bool) -> None:
    assert ok(text, EMPTY) is expected


def test_matches_element_for_patch() -> None:
    path = bind_path(parse_path('emails[type eq "work" and primary eq true].value'), REGISTRY, USER)
    assert path.filter is not None and path.sub == "value"
    assert [matches_element(path.filter, el) for el in BJENSEN["emails"]] == [True, False]
    members = bind_path(parse_path('members[value eq "2819c223"]'), REGISTRY, GROUP)
    assert members.filter is not None
    assert matches_element(members.filter, {"value": "2819C223"})


def test_bind_resolves_case_insensitively_and_desugars_null() -> None:
    node = bind(parse_filter("NAME.familyname eq x"), REGISTRY, USER)
    assert isinstance(node, Compare) and node.attr.path is not None
    assert node.attr.path.dotted == "name.familyName"
    assert bind(parse_filter("title eq null"), REGISTRY, USER).__class__ is Not
    assert isinstance(bind(parse_filter("title ne null"), REGISTRY, USER), Present)
    dated = bind(parse_filter("meta.created gt 2015-10-10T14:38:21.8617979-07:00"), REGISTRY, USER)
    assert isinstance(dated, Compare) and dated.value == "2015-10-10T21:38:21.861797Z"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('nosuch eq "x"', "unknown attribute nosuch"),
        ('name.nosuch eq "x"', "unknown attribute name.nosuch"),
        ('emails[nosuch eq "x"]', "unknown attribute nosuch"),
        ("active gt true", "not allowed on boolean"),
        ('x509Certificates.value lt "a"', "not allowed on binary"),
        ('name eq "x"', "cannot be compared"),
        ('meta.created co "2010"', "needs a string attribute"),
        ('meta.created gt "yesterday"', "not a valid dateTime"),
        ('meta.created gt "2015-13-45T00:00:00Z"', "not a valid dateTime"),
        ('active eq "yes"', "not a valid boolean"),
        ("userName gt null", "null can only be compared"),
        ('userName[value eq "x"]', "needs a complex attribute"),
        ('password eq "secret"', "cannot be used in a filter"),
        ('urn:example:nosuch:attr eq "x"', "unknown attribute"),
    ],
)
def test_bind_errors(text: str, fragment: str) -> None:
    with pytest.raises(ScimError) as info:
        bind(parse_filter(text), REGISTRY, USER)
    assert info.value.status == 400
    assert info.value.scim_type == "invalidFilter"
    assert fragment in info.value.detail


def test_bind_path_errors_are_invalid_path() -> None:
    for text in ("nosuch", 'emails[nosuch eq "x"]', 'emails[type eq "w"].nosuch', 'userName[value eq "x"]'):
        with pytest.raises(ScimError) as info:
            bind_path(parse_path(text), REGISTRY, USER)
        assert info.value.scim_type == "invalidPath", text
