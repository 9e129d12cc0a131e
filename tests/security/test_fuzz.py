"""Property-based fuzzing of the SCIM API over the ASGI app (hypothesis; bounded budget).

Random methods, paths, query parameters, headers and bodies (valid and invalid JSON, invalid
UTF-8, deep nesting, huge strings, wrong content types) must never produce a 500, and every error
must be a SCIM error body with the response's own status and no SQL or traceback in it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scim_client import ERROR_URN, GROUP_URN, PATCH_OP, USER_URN, Scim

EXAMPLES = 300
#: Internals that must never reach a client (user input may be echoed, so no SQL keywords here).
INTERNALS = re.compile(
    r"Traceback|sqlalchemy|asyncpg|aiosqlite|sqlite3|OperationalError|ProgrammingError|\[SQL:"
)
ATTRS = [
    "userName",
    "name.givenName",
    "emails",
    "emails.value",
    'emails[type eq "work"].value',
    "members",
    "members.value",
    "displayName",
    "active",
    "meta.lastModified",
    "groups",
    "id",
    "externalId",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
    "x",
    "",
]
OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "EQ", "and", "or", "not"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(ATTRS),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(ATTRS), st.text(max_size=12)), inner, max_size=5),
    ),
    max_leaves=25,
)
filters = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda a, op, v: f"{a} {op} {orjson.dumps(v).decode()}",
        st.sampled_from(ATTRS),
        st.sampled_from(OPS),
        json_scalars,
    ),
    st.builds(lambda a, b: f"({a}) and not ({b})", st.text(max_size=20), st.text(max_size=20)),
)


def scim_bodies(ids: list[str]) -> st.SearchStrategy[Any]:
    some_id = st.sampled_from([*ids, "nope", ""])
    user = st.fixed_dictionaries(
        {"schemas": st.just([USER_URN]), "userName": st.text(max_size=30)},
        optional={"emails": json_values, "name": json_values, "active": json_scalars, "password": st.text()},
    )
    group = st.fixed_dictionaries(
        {"schemas": st.just([GROUP_URN]), "displayName": st.text(max_size=30)},
        optional={"members": st.lists(st.fixed_dictionaries({"value": some_id}), max_size=3)},
    )
    op = st.fixed_dictionaries(
        {"op": st.sampled_from(["add", "replace", "remove", "Add", "bogus"])},
        optional={"path": st.one_of(st.sampled_from(ATTRS), filters), "value": json_values},
    )
    patch = st.fixed_dictionaries({"schemas": st.just([PATCH_OP]), "Operations": st.lists(op, max_size=4)})
    search = st.fixed_dictionaries(
        {},
        optional={
            "filter": filters,
            "count": json_scalars,
            "startIndex": json_scalars,
            "sortBy": st.sampled_from(ATTRS),
            "attributes": json_values,
        },
    )
    return st.one_of(user, group, patch, search, json_values)


def raw_bodies(ids: list[str]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        scim_bodies(ids).map(orjson.dumps),
        st.binary(max_size=200),  # mostly invalid UTF-8 / invalid JSON
        st.integers(min_value=60, max_value=3000).map(lambda d: b"[" * d + b"]" * d),
        st.integers(min_value=60, max_value=3000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
        st.sampled_from([b"", b" ", b"null", b"{", b'{"userName": "\xff"}', b"\xef\xbb\xbf{}"]),
        st.just(orjson.dumps({"schemas": [USER_URN], "userName": "h" * 1_100_000})),
        st.just(b'{"a":"' + b"\\u0000" + b'"}'),
    )


content_types = st.sampled_from(
    [
        "application/scim+json",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/xml",
        "multipart/form-data",
        "",
        "application/scim+json; charset=latin-1",
        "*/*",
    ]
)


def paths(ids: list[str]) -> st.SearchStrategy[str]:
    segment = st.one_of(
        st.sampled_from([*ids, "Users", "users", "Groups", ".search", "Bulk", "Me", "Schemas", "x"]),
        st.text(max_size=20).map(lambda t: quote(t, safe="")),
    )
    return st.one_of(
        st.sampled_from(["/Users", "/Groups", "/Users/.search", "/Groups/.search", "/.search"]),
        st.sampled_from(ids).map(lambda i: f"/Users/{i}"),
        st.sampled_from(ids).map(lambda i: f"/Groups/{i}"),
        st.sampled_from(
            ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes", "/ResourceTypes/User", "/Me"]
        ),
        st.lists(segment, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s)),
    )


query_params = st.dictionaries(
    st.sampled_from(
        [
            "filter",
            "count",
            "startIndex",
            "sortBy",
            "sortOrder",
            "attributes",
            "excludedAttributes",
            "cursor",
            "x",
        ]
    ),
    st.one_of(filters, st.integers().map(str), st.sampled_from(ATTRS), st.text(max_size=30)),
    max_size=4,
)
extra_headers = st.dictionaries(
    st.sampled_from(["If-Match", "If-None-Match", "X-Request-Id", "Accept", "Origin"]),
    st.one_of(
        st.just('W/"1"'),
        st.just("*"),
        st.text(alphabet=st.characters(codec="ascii", min_codepoint=32, max_codepoint=126), max_size=40),
    ),
    max_size=3,
)


def check(response: Any) -> None:
    status = response.status_code
    assert status < 500 or status == 501, (status, response.text[:500])
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("x-request-id")
    if status >= 400:
        assert response.headers["content-type"].startswith("application/scim+json"), response.headers
        body = response.json()
        assert body["schemas"] == [ERROR_URN], body
        assert body["status"] == str(status), body
        assert not INTERNALS.search(response.text), response.text[:500]


def test_fuzz_the_api(scim: Scim) -> None:
    user = scim.create_user("fuzz@example.com", emails=[{"value": "fuzz@example.com", "type": "work"}])
    group = scim.create_group("fuzzers", members=[user["id"]])
    ids = [user["id"], group["id"]]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
        path=paths(ids),
        params=query_params,
        headers=extra_headers,
        content_type=content_types,
        body=st.one_of(st.none(), raw_bodies(ids)),
    )
    def run(
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        content_type: str,
        body: bytes | None,
    ) -> None:
        sent = dict(headers)
        if content_type:
            sent["Content-Type"] = content_type
        response = scim.request(method, path, params=params, headers=sent, content=body)
        if method == "HEAD":
            assert response.status_code < 500 or response.status_code == 501
            return
        check(response)

    run()
