"""The SQL back end on SQLite and PostgreSQL: RFC examples, a differential test against the Python
evaluator, and index usage on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.errors import ScimError
from provisor.filter import bind, matches, parse_filter
from provisor.schema.registry import ENTERPRISE_URN, default_registry
from provisor.storage import indexing
from provisor.storage.engine import backend_name, create_engine
from provisor.storage.filter_sql import SqlContext, compile_filter, sort_expression
from provisor.storage.tables import attribute_index, group_members, resources

REGISTRY = default_registry()
USER = REGISTRY.resource_type("User")
GROUP = REGISTRY.resource_type("Group")
LONG_NAME = "long" + "x" * 600
USER_NAMES = [
    "bjensen",
    "BJensen.2",
    "alice",
    "Álvaro",
    "ömer",
    "zed",
    "a_b%c",
    "Ünal",
    LONG_NAME,
    LONG_NAME + "y",
    "jyoung",
    "O'Malley",
    "emp-7",
    "",
]
FAMILY = ["Jensen", "jensen", "O'Malley", "Young", "Müller", "", "Zeta"]
DOMAINS = ["example.com", "example.org", "Foo.com", "ex_ample.com"]
TYPES = ["work", "home", "Work", "other"]
TITLES = ["Tour Guide", "tour guide", "Engineer", "", "Ärztin"]


class Db:
    """An engine on its own event loop, so many queries can run from sync (hypothesis) code."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine = create_engine(url)
        self.dialect = backend_name(url)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    async def _insert(self, table: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            async with self.engine.begin() as conn:
                await conn.execute(insert(table), rows)

    def insert(self, table: Any, rows: list[dict[str, Any]]) -> None:
        self.run(self._insert(table, rows))

    async def _ids(self, tenant: str, rt_name: str, where: Any, order: Any = None) -> list[str]:
        stmt = select(resources.c.id).where(
            resources.c.tenant_id == tenant, resources.c.resource_type == rt_name, where
        )
        if order is not None:
            stmt = stmt.order_by(order, resources.c.id)
        async with self.engine.connect() as conn:
            return [row[0] for row in await conn.execute(stmt)]

    def ids(self, tenant: str, rt_name: str, where: Any, order: Any = None) -> list[str]:
        result: list[str] = self.run(self._ids(tenant, rt_name, where, order))
        return result


@pytest.fixture
def db(database_url: str) -> Iterator[Db]:
    handle = Db(database_url)
    yield handle
    handle.close()


def _stamp(rng: random.Random) -> str:
    return (
        f"20{rng.randint(10, 25):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.{rng.randint(0, 999999):06d}Z"
    )


def _random_user(rng: random.Random, n: int) -> dict[str, Any]:
    base = USER_NAMES[n % len(USER_NAMES)]
    doc: dict[str, Any] = {"userName": base if n < len(USER_NAMES) else f"{base or 'user'}-{n}"}
    if rng.random() < 0.8:
        doc["name"] = {"familyName": rng.choice(FAMILY), "givenName": rng.choice(USER_NAMES[:6])}
    if rng.random() < 0.8:
        emails = []
        for _ in range(rng.randint(0, 3)):
            email: dict[str, Any] = {"value": f"{rng.choice(USER_NAMES[:6])}@{rng.choice(DOMAINS)}"}
            if rng.random() < 0.8:
                email["type"] = rng.choice(TYPES)
            if rng.random() < 0.3:
                email["primary"] = rng.random() < 0.7
            emails.append(email)
        doc["emails"] = emails
    if rng.random() < 0.7:
        doc["active"] = rng.random() < 0.6
    if rng.random() < 0.6:
        doc["title"] = rng.choice(TITLES)
    if rng.random() < 0.6:
        doc["externalId"] = rng.choice(["ext-1", "EXT-1", "ext-22", "jyoung", "x%_"])
    if rng.random() < 0.5:
        doc[ENTERPRISE_URN] = {"employeeNumber": rng.choice(["701984", "123", "007", "emp-7"])}
    return doc


def _seed(db: Db, tenant: str, count: int = 30) -> dict[str, dict[str, Any]]:
    """Insert `count` users (+ one group) and return their output-form documents by id."""
    rng = random.Random(7)
    rows, index_rows, output = [], [], {}
    for n in range(count):
        rid, doc = str(uuid.uuid4()), _random_user(rng, n)
        created, modified = sorted([_stamp(rng), _stamp(rng)])
        rows.append(
            {
                "tenant_id": tenant,
                "id": rid,
                "resource_type": "User",
                "version": n + 1,
                "created": created,
                "last_modified": modified,
                "doc": doc,
            }
        )
        for attr, norm, unique in indexing.index_rows(USER, doc):
            index_rows.append(
                {
                    "tenant_id": tenant,
                    "resource_type": "User",
                    "attr": attr,
                    "value_norm": norm,
                    "resource_id": rid,
                    "is_unique": unique,
                }
            )
        meta = {
            "resourceType": "User",
            "created": created,
            "lastModified": modified,
            "version": f'W/"{n + 1}"',
        }
        schemas = [USER.schema.id] + ([ENTERPRISE_URN] if doc.get(ENTERPRISE_URN) else [])
        output[rid] = {"schemas": schemas, "id": rid, **doc, "meta": meta}
    db.insert(resources, rows)
    db.insert(attribute_index, index_rows)
    return output


def _expected(flt: str, rt_docs: dict[str, dict[str, Any]], rt: Any = USER) -> set[str]:
    node = bind(parse_filter(flt), REGISTRY, rt)
    return {rid for rid, doc in rt_docs.items() if matches(node, doc)}


def _sql(db: Db, tenant: str, flt: str, rt: Any = USER) -> set[str]:
    node = bind(parse_filter(flt), REGISTRY, rt)
    return set(db.ids(tenant, rt.name, compile_filter(node, SqlContext(db.dialect, tenant, rt))))


RFC_AND_QUIRK_FILTERS = [
    'userName Eq "bjensen"',
    'name.familyName co "O\'Malley"',
    'userName sw "J"',
    'urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"',
    "title pr",
    f'schemas eq "{ENTERPRISE_URN}"',
    'schemas eq "urn:ietf:params:scim:schemas:core:2.0:User"',
    f'not (schemas eq "{ENTERPRISE_URN.upper()}")',
    'meta.lastModified gt "2011-05-13T04:42:34Z"',
    'meta.lastModified ge "2011-05-13T04:42:34Z"',
    'meta.lastModified lt "2020-05-13T04:42:34Z"',
    'meta.lastModified le "2020-05-13T04:42:34Z"',
    'title pr and userType eq "Employee"',
    'title pr or userType eq "Intern"',
    'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
    'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
    'userType eq "Employee" and (emails.type eq "work")',
    'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
    'emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]',
    "externalId eq jyoung",
    "userName sw O",
    "meta.Created gt 2015-10-10T14:38:21.8617979-07:00",
    "emails.Value co example.com",
    "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
    f'userName eq "{LONG_NAME}"',
    f'userName sw "{LONG_NAME[:520]}"',
    'userName eq ""',
    'userName ne "alice"',
    'userName sw "a_b"',
    'externalId eq "EXT-1"',
    "active eq true",
    "active ne true",
    "not (active eq false)",
    "title eq null",
    "title ne null",
    f'{ENTERPRISE_URN}:employeeNumber eq "701984"',
    f"{ENTERPRISE_URN}:employeeNumber eq 007",
    'emails[type eq "work"].value ew ".com"',
    'emails[not (type eq "work")]',
    "emails[primary eq true]",
    "name[familyName pr]",
    'title gt "a"',
    'meta.version eq "W/\\"3\\""',
]


@pytest.mark.parametrize("flt", RFC_AND_QUIRK_FILTERS)
def test_examples_agree_with_evaluator(db: Db, tenant_id: str, flt: str) -> None:
    docs = _seed(db, tenant_id)
    assert _sql(db, tenant_id, flt) == _expected(flt, docs)


def test_examples_return_the_right_ids(db: Db, tenant_id: str) -> None:
    docs = _seed(db, tenant_id)
    by_name = {doc["userName"]: rid for rid, doc in docs.items()}
    assert _sql(db, tenant_id, 'userName eq "BJENSEN"') == {by_name["bjensen"]}
    starting = {rid for rid, doc in docs.items() if doc["userName"].lower().startswith("bj")}
    assert {by_name["bjensen"], by_name["BJensen.2"]} < starting
    assert _sql(db, tenant_id, 'userName sw "bj"') == starting
    assert _sql(db, tenant_id, f'userName eq "{LONG_NAME}"') == {by_name[LONG_NAME]}
    assert _sql(db, tenant_id, 'userName eq "álvaro"') == {by_name["Álvaro"]}
    assert _sql(db, tenant_id, 'userName co "%"') == {by_name["a_b%c"], by_name["a_b%c-20"]}
    assert _sql(db, tenant_id, "id eq " + by_name["zed"]) == {by_name["zed"]}
    assert len(_sql(db, tenant_id, "userName pr")) == len(docs) - 1  # one empty userName


def test_group_membership(db: Db, tenant_id: str) -> None:
    docs = _seed(db, tenant_id, 5)
    users = list(docs)
    gid, other = str(uuid.uuid4()), str(uuid.uuid4())
    now = "2024-01-01T00:00:00.000000Z"
    db.insert(
        resources,
        [
            {
                "tenant_id": tenant_id,
                "id": g,
                "resource_type": "Group",
                "version": 1,
                "created": now,
                "last_modified": now,
                "doc": {"displayName": name},
            }
            for g, name in ((gid, "Admins"), (other, "Empty"))
        ],
    )
    db.insert(
        group_members,
        [
            {"tenant_id": tenant_id, "group_id": gid, "member_id": uid, "member_type": "User"}
            for uid in users[:2]
        ],
    )
    assert _sql(db, tenant_id, f'members.value eq "{users[0].upper()}"', GROUP) == {gid}
    assert _sql(db, tenant_id, f'members eq "{users[1]}"', GROUP) == {gid}
    assert _sql(db, tenant_id, f'members[value eq "{users[1]}" and type eq "user"]', GROUP) == {gid}
    assert _sql(db, tenant_id, "members pr", GROUP) == {gid}
    assert _sql(db, tenant_id, "not (members pr)", GROUP) == {other}
    assert _sql(db, tenant_id, f'members.value ne "{users[0]}"', GROUP) == {gid, other}
    assert _sql(db, tenant_id, f'groups.value eq "{gid}"') == set(users[:2])
    with pytest.raises(ScimError) as info:
        _sql(db, tenant_id, 'members.display eq "x"', GROUP)
    assert info.value.scim_type == "invalidFilter"


def _lower_or_none(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def test_sort_expression(db: Db, tenant_id: str) -> None:
    docs = _seed(db, tenant_id)
    ctx = SqlContext(db.dialect, tenant_id, USER)
    keys: list[tuple[str, Callable[[dict[str, Any]], str | None]]] = [
        ("userName", lambda d: d["userName"].lower()),
        ("meta.created", lambda d: d["meta"]["created"]),
        ("name.familyName", lambda d: _lower_or_none((d.get("name") or {}).get("familyName"))),
    ]
    for text, key in keys:
        path = REGISTRY.resolve(USER, text)
        assert path is not None
        got = db.ids(tenant_id, "User", sort_expression(path, ctx).is_not(None), sort_expression(path, ctx))
        present = [rid for rid, d in docs.items() if key(d) is not None]
        want = sorted(present, key=lambda rid: (key(docs[rid]) or "", rid))
        assert got == want, text
    for unsortable in ("name", "meta.location", "groups"):
        bad = REGISTRY.resolve(USER, unsortable)
        assert bad is not None
        with pytest.raises(ScimError) as info:
            sort_expression(bad, ctx)
        assert info.value.scim_type == "invalidValue"
    emails = REGISTRY.resolve(USER, "emails")
    assert emails is not None
    got = db.ids(tenant_id, "User", sort_expression(emails, ctx).is_not(None))
    assert set(got) == {rid for rid, d in docs.items() if d.get("emails")}


# ---- differential test -----------------------------------------------------------------------

STRING_ATTRS = [
    "userName",
    "name.familyName",
    "emails.value",
    "emails.type",
    "title",
    "externalId",
    "emails",
    f"{ENTERPRISE_URN}:employeeNumber",
]
WORDS = [
    "bjensen",
    "BJ",
    "al",
    "Álvaro",
    "ömer",
    "a_b%c",
    "_",
    "%",
    "example.com",
    "@",
    "WORK",
    "work",
    "Jensen",
    "o'malley",
    "tour",
    "ext-1",
    "EXT",
    "1",
    "007",
    "",
    "z",
    "Ä",
    "x" * 20,
    LONG_NAME,
]
STAMPS = [
    "2015-10-10T14:38:21.8617979-07:00",
    "2018-01-01T00:00:00Z",
    "2020-06-15T12:00:00.5+02:00",
    "2023-03-03",
]


def _value(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@st.composite
def _leaf(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["str", "str", "str", "bool", "date", "pr", "null", "path"]))
    if kind == "str":
        op = draw(st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]))
        return f"{draw(st.sampled_from(STRING_ATTRS))} {op} {_value(draw(st.sampled_from(WORDS)))}"
    if kind == "bool":
        return f"active {draw(st.sampled_from(['eq', 'ne']))} {draw(st.sampled_from(['true', 'false']))}"
    if kind == "date":
        op = draw(st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]))
        attr = draw(st.sampled_from(["meta.created", "meta.lastModified"]))
        return f"{attr} {op} {_value(draw(st.sampled_from(STAMPS)))}"
    if kind == "pr":
        return f"{draw(st.sampled_from([*STRING_ATTRS, 'active', 'name', 'emails', 'id']))} pr"
    if kind == "null":
        attr = draw(st.sampled_from(["title", "active", "emails.type"]))
        return f"{attr} {draw(st.sampled_from(['eq', 'ne']))} null"
    inner = draw(st.lists(_element_leaf(), min_size=1, max_size=3))
    joined = f" {draw(st.sampled_from(['and', 'or']))} ".join(inner)
    if draw(st.booleans()):
        joined = f"not ({joined})"
    suffix = ""
    if draw(st.booleans()):
        suffix = f".value {draw(st.sampled_from(['eq', 'co', 'ne']))} {_value(draw(st.sampled_from(WORDS)))}"
    return f"emails[{joined}]{suffix}"


@st.composite
def _element_leaf(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["value", "type", "primary", "pr"]))
    if kind == "primary":
        return f"primary {draw(st.sampled_from(['eq', 'ne']))} {draw(st.sampled_from(['true', 'false']))}"
    if kind == "pr":
        return f"{draw(st.sampled_from(['value', 'type', 'primary']))} pr"
    op = draw(st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "lt"]))
    return f"{kind} {op} {_value(draw(st.sampled_from(WORDS)))}"


FILTERS = st.recursive(
    _leaf(),
    lambda children: st.one_of(
        st.tuples(children, st.sampled_from(["and", "or", "AND", "Or"]), children).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        children.map(lambda c: f"not ({c})"),
    ),
    max_leaves=6,
)


def test_differential_sql_vs_evaluator(db: Db, tenant_id: str) -> None:
    docs = _seed(db, tenant_id)
    outcomes: Counter[str] = Counter()

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
    @given(FILTERS)
    def check(flt: str) -> None:
        expected = _expected(flt, docs)
        outcomes["empty" if not expected else "all" if len(expected) == len(docs) else "some"] += 1
        assert _sql(db, tenant_id, flt) == expected, flt

    check()
    assert sum(outcomes.values()) >= 600
    assert outcomes["some"] >= 50, outcomes  # the generator must produce discriminating filters


# ---- index usage -----------------------------------------------------------------------------


async def _explain(db: Db, tenant: str, flt: str) -> str:
    node = bind(parse_filter(flt), REGISTRY, USER)
    stmt = select(resources.c.id).where(
        resources.c.tenant_id == tenant,
        resources.c.resource_type == "User",
        compile_filter(node, SqlContext("postgresql", tenant, USER)),
    )
    sql = str(stmt.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    async with db.engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE resources")
        await conn.exec_driver_sql("ANALYZE attribute_index")
        rows = await conn.exec_driver_sql("EXPLAIN " + sql)
        return "\n".join(str(row[0]) for row in rows)


def test_username_eq_uses_index_on_postgresql(postgresql_url: str, tenant_id: str) -> None:
    """PostgreSQL only by nature (its planner is what is checked), so not parametrised."""
    db = Db(postgresql_url)
    assert db.dialect == "postgresql"
    now = "2024-01-01T00:00:00.000000Z"
    ids = [str(uuid.uuid4()) for _ in range(5000)]
    db.insert(
        resources,
        [
            {
                "tenant_id": tenant_id,
                "id": rid,
                "resource_type": "User",
                "version": 1,
                "created": now,
                "last_modified": now,
                "doc": {"userName": f"user{n}"},
            }
            for n, rid in enumerate(ids)
        ],
    )
    db.insert(
        attribute_index,
        [
            {
                "tenant_id": tenant_id,
                "resource_type": "User",
                "attr": "userName",
                "value_norm": f"user{n}",
                "resource_id": rid,
                "is_unique": True,
            }
            for n, rid in enumerate(ids)
        ],
    )
    try:
        plan = db.run(_explain(db, tenant_id, 'userName eq "USER42"'))
        assert "ix_attribute_index_lookup" in plan or "ux_attribute_index_unique" in plan, plan
        assert "Seq Scan on attribute_index" not in plan, plan
        assert _sql(db, tenant_id, 'userName eq "USER42"') == {ids[42]}
    finally:
        db.close()
