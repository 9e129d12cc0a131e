"""Parser: RFC 7644 section 3.4.2.2 examples, precedence, leniency, errors, and fuzzing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from provisor.errors import ScimError
from provisor.filter import bind, matches, parse_filter, parse_path
from provisor.filter.ast import And, Attr, Compare, Not, Or, PatchPath, Present, ValuePath
from provisor.schema.registry import default_registry
from provisor.storage.filter_sql import SqlContext, compile_filter

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
GROUP = REGISTRY.resource_type("Group")
_FACTORIES: dict[str, Any] = {"sqlite": sqlite.dialect, "postgresql": postgresql.dialect}
DIALECTS: dict[str, Any] = {name: factory() for name, factory in _FACTORIES.items()}
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def a(name: str, sub: str | None = None, urn: str | None = None) -> Attr:
    return Attr(urn, name, sub)


RFC_EXAMPLES = [
    ('userName eq "bjensen"', Compare(a("userName"), "eq", "bjensen")),
    ('name.familyName co "O\'Malley"', Compare(a("name", "familyName"), "co", "O'Malley")),
    ('userName sw "J"', Compare(a("userName"), "sw", "J")),
    (
        'urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"',
        Compare(a("userName", urn="urn:ietf:params:scim:schemas:core:2.0:User"), "sw", "J"),
    ),
    ("title pr", Present(a("title"))),
    (
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        Compare(a("meta", "lastModified"), "gt", "2011-05-13T04:42:34Z"),
    ),
    (
        'meta.lastModified ge "2011-05-13T04:42:34Z"',
        Compare(a("meta", "lastModified"), "ge", "2011-05-13T04:42:34Z"),
    ),
    (
        'meta.lastModified lt "2011-05-13T04:42:34Z"',
        Compare(a("meta", "lastModified"), "lt", "2011-05-13T04:42:34Z"),
    ),
    (
        'meta.lastModified le "2011-05-13T04:42:34Z"',
        Compare(a("meta", "lastModified"), "le", "2011-05-13T04:42:34Z"),
    ),
    (
        'title pr and userType eq "Employee"',
        And(Present(a("title")), Compare(a("userType"), "eq", "Employee")),
    ),
    ('title pr or userType eq "Intern"', Or(Present(a("title")), Compare(a("userType"), "eq", "Intern"))),
    (
        'schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"',
        Compare(a("schemas"), "eq", ENT),
    ),
    (
        'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
        And(
            Compare(a("userType"), "eq", "Employee"),
            Or(Compare(a("emails"), "co", "example.com"), Compare(a("emails", "value"), "co", "example.org")),
        ),
    ),
    (
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
        And(
            Compare(a("userType"), "ne", "Employee"),
            Not(
                Or(
                    Compare(a("emails"), "co", "example.com"),
                    Compare(a("emails", "value"), "co", "example.org"),
                )
            ),
        ),
    ),
    (
        'userType eq "Employee" and (emails.type eq "work")',
        And(Compare(a("userType"), "eq", "Employee"), Compare(a("emails", "type"), "eq", "work")),
    ),
    (
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        And(
            Compare(a("userType"), "eq", "Employee"),
            ValuePath(
                a("emails"), And(Compare(a("type"), "eq", "work"), Compare(a("value"), "co", "@example.com"))
            ),
        ),
    ),
    (
        'emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]',
        Or(
            ValuePath(
                a("emails"), And(Compare(a("type"), "eq", "work"), Compare(a("value"), "co", "@example.com"))
            ),
            ValuePath(a("ims"), And(Compare(a("type"), "eq", "xmpp"), Compare(a("value"), "co", "@foo.com"))),
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), RFC_EXAMPLES)
def test_rfc_examples(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


def test_precedence_not_and_or() -> None:
    x, y, z = (Present(a(n)) for n in "xyz")
    assert parse_filter("x pr or y pr and z pr") == Or(x, And(y, z))
    assert parse_filter("x pr and y pr or z pr") == Or(And(x, y), z)
    assert parse_filter("not (x pr) and y pr") == And(Not(x), y)
    assert parse_filter("(x pr or y pr) and z pr") == And(Or(x, y), z)
    assert parse_filter("not(x pr or y pr)") == Not(Or(x, y))


def test_long_chains_stay_shallow() -> None:
    node = parse_filter(" or ".join(f"a{i} pr" for i in range(300)))

    def depth(n: object) -> int:
        if isinstance(n, And | Or):
            return 1 + max(depth(n.left), depth(n.right))
        return 1

    assert depth(node) <= 10


def test_keywords_any_case() -> None:
    assert parse_filter('userName EQ "x" AnD title PR oR NOT (active Eq TRUE)') == Or(
        And(Compare(a("userName"), "eq", "x"), Present(a("title"))),
        Not(Compare(a("active"), "eq", True)),
    )


def test_literals_and_escapes() -> None:
    assert parse_filter(r'a eq "q\"b\\s\/\n\t\u00e9\ud83d\ude00"') == Compare(a("a"), "eq", 'q"b\\s/\n\té😀')
    assert parse_filter("a eq null") == Compare(a("a"), "eq", None)
    assert parse_filter("a eq False") == Compare(a("a"), "eq", False)
    assert parse_filter("a gt 10") == Compare(a("a"), "gt", 10)
    assert parse_filter("a gt -1.5e3") == Compare(a("a"), "gt", Decimal("-1.5e3"))
    assert parse_filter("a eq 007") == Compare(a("a"), "eq", "007")


def test_value_path_with_sub_attribute_is_desugared() -> None:
    assert parse_filter('emails[type eq "work"].value eq "x"') == ValuePath(
        a("emails"), And(Compare(a("type"), "eq", "work"), Compare(a("value"), "eq", "x"))
    )


def test_urn_paths() -> None:
    assert parse_filter(f'{ENT}:manager.value eq "x"') == Compare(a("manager", "value", ENT), "eq", "x")
    assert parse_filter(f"{ENT}:employeeNumber pr") == Present(a("employeeNumber", urn=ENT))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("externalId eq jyoung", Compare(a("externalId"), "eq", "jyoung")),
        ("userName sw O", Compare(a("userName"), "sw", "O")),
        (
            "meta.Created gt 2015-10-10T14:38:21.8617979-07:00",
            Compare(a("meta", "Created"), "gt", "2015-10-10T14:38:21.8617979-07:00"),
        ),
        ("emails.Value co example.com", Compare(a("emails", "Value"), "co", "example.com")),
        (
            "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
            And(
                Compare(a("name", "FamilyName"), "eq", "Employee"),
                Or(
                    Compare(a("emails", "Value"), "co", "example.com"),
                    Compare(a("emails", "Value"), "co", "example.org"),
                ),
            ),
        ),
    ],
)
def test_entra_unquoted_values(text: str, expected: object) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('userName eq "bjensen")', "unexpected ')' at position 21"),
        ('(userName eq "x"', "unexpected end of input at position 16"),
        ("userName zz 1", "unknown operator 'zz' at position 9"),
        ('userName eq "abc', "unterminated string starting at position 12"),
        ("userName eq", "unexpected end of input at position 11"),
        ("", "empty filter"),
        ("emails[]", "unexpected ']' at position 7"),
        ('emails[type eq "w"', "unexpected end of input"),
        ("1abc eq 2", "invalid attribute path '1abc' at position 0"),
        ('a eq "\\x"', "invalid escape"),
        ("a pr b pr", "unexpected 'b' at position 5"),
    ],
)
def test_errors_name_the_position(text: str, message: str) -> None:
    with pytest.raises(ScimError) as info:
        parse_filter(text)
    assert info.value.status == 400
    assert info.value.scim_type == "invalidFilter"
    assert message in info.value.detail


def test_limits() -> None:
    with pytest.raises(ScimError, match="longer than"):
        parse_filter("a pr" + " " * 5000)
    with pytest.raises(ScimError, match="nested too deeply"):
        parse_filter("(" * 40 + "a pr" + ")" * 40)
    assert parse_filter("(" * 10 + "a pr" + ")" * 10) == Present(a("a"))


def test_parse_path() -> None:
    assert parse_path('emails[type eq "work"].value') == PatchPath(
        a("emails"), Compare(a("type"), "eq", "work"), "value"
    )
    assert parse_path('members[value eq "2819c223"]') == PatchPath(
        a("members"), Compare(a("value"), "eq", "2819c223")
    )
    assert parse_path(f"{ENT}:manager.value") == PatchPath(a("manager", "value", ENT))
    assert parse_path("name.givenName") == PatchPath(a("name", "givenName"))
    for bad in ("", "name.", 'emails[type eq "work"] x', "emails[", "a.b.c", "emails.value[type pr]"):
        with pytest.raises(ScimError) as info:
            parse_path(bad)
        assert info.value.scim_type == "invalidPath", bad


#: Filter-shaped noise: fragments of real syntax glued together, to get past the first token.
FILTERISH = st.lists(
    st.sampled_from(
        [
            "a",
            "emails",
            "[",
            "]",
            "(",
            ")",
            ".",
            '"x"',
            '"',
            "\\",
            ":",
            "urn:x:y",
            " eq ",
            " pr",
            " and ",
            " or ",
            "not ",
            "1.5",
            "true",
            "null",
            " ",
            "\u00e9",
            "\x00",
            ".value",
        ]
    )
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(), FILTERISH))
def test_fuzz_only_scim_errors(text: str) -> None:
    for parse in (parse_filter, parse_path):
        try:
            parse(text)
        except ScimError as exc:
            assert exc.status == 400


ATTRIBUTE_WORDS = [
    *("userName", "emails", "emails.value", "name.familyName", "active", "meta.created", "members"),
    *("groups.value", "x509Certificates", "schemas", "nosuch", "meta.location", "type", "value", "id"),
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
]
VALUE_WORDS = ['"x"', "true", "null", "1", "2.5", "2015-10-10T14:38:21Z", '"2015-10-10"', '""', "%_"]
OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
_LEAF = st.one_of(
    st.tuples(st.sampled_from(ATTRIBUTE_WORDS), st.sampled_from(OPS), st.sampled_from(VALUE_WORDS)).map(
        " ".join
    ),
    st.sampled_from(ATTRIBUTE_WORDS).map(lambda attr: f"{attr} pr"),
)
_ELEMENT = st.one_of(
    _LEAF,
    st.tuples(st.sampled_from(ATTRIBUTE_WORDS), _LEAF).map(lambda t: f"{t[0]}[{t[1]}]"),
)
BOUND_FILTERS = st.recursive(
    _ELEMENT,
    lambda kids: st.one_of(
        st.tuples(kids, st.sampled_from(["and", "or"]), kids).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        kids.map(lambda kid: f"not ({kid})"),
    ),
    max_leaves=4,
)


@settings(max_examples=1500, deadline=None)
@given(BOUND_FILTERS)
def test_fuzz_whole_pipeline_only_scim_errors(text: str) -> None:
    """Whatever parses must bind, evaluate and compile (both dialects) or fail with a SCIM 400."""
    for rt in (USER, GROUP):
        try:
            node = bind(parse_filter(text), REGISTRY, rt)
            matches(node, {"userName": "x", "emails": [{"value": "x"}], "meta": {"created": "x"}})
            for dialect in ("sqlite", "postgresql"):
                where = compile_filter(node, SqlContext(dialect, "t", rt))
                where.compile(dialect=DIALECTS[dialect], compile_kwargs={"literal_binds": False})
        except ScimError as exc:
            assert exc.status == 400


def _full_parse(text: str) -> object:
    """The tokenizer and parser alone, without `parse_filter`'s fast path for `name op "value"`."""
    from provisor.errors import invalid_filter
    from provisor.filter.parser import _check_characters, _Parser

    try:
        _check_characters(text, invalid_filter)
        return _Parser(text, invalid_filter, 32).parse_filter()
    except ScimError as error:
        return ("error", error.detail)


def _any_parse(text: str) -> object:
    try:
        return parse_filter(text)
    except ScimError as error:
        return ("error", error.detail)


_PIECES = st.sampled_from(
    ["userName", "not", "and", "or", "emails", "name.givenName", "x-y_z", "9a", "urn:a:b", "$ref", ""]
)
_OPS = st.sampled_from(["eq", "EQ", "Ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "xx", "e"])
_SPACES = st.sampled_from(["", " ", "  ", "\t", "\u00a0"])
_CLOSE = st.sampled_from(['"', "", '\\"'])


@settings(max_examples=400, deadline=None)
@given(_SPACES, _PIECES, _SPACES, _OPS, _SPACES, st.text(max_size=12), _CLOSE, _SPACES)
def test_the_fast_path_gives_what_the_parser_gives(
    lead: str, name: str, gap: str, op: str, gap2: str, value: str, close: str, tail: str
) -> None:
    """`name op "value"` is parsed without the tokenizer (nearly every IdP sends `userName eq`
    before each create): same AST, same error, whatever the spaces, names, operators and values."""
    text = f'{lead}{name}{gap or " "}{op}{gap2}"{value}{close}{tail}'
    assert _any_parse(text) == _full_parse(text)
    spaced = f' {name} {op} "{value}" '
    assert _any_parse(spaced) == _full_parse(spaced)
