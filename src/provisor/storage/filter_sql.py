"""Compile a bound filter AST (provisor.filter) to a SQLAlchemy Core boolean over `resources`.

Every leaf is made two-valued (COALESCE(..., false)) so SQL's NULL logic can never diverge from the
Python evaluator under `not`; multi-valued attributes become EXISTS over array elements; indexed
attributes use `attribute_index`; group membership comes from `group_members`. Values are always
bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from provisor.errors import ScimError, invalid_filter, invalid_value
from provisor.filter.ast import And, Compare, Filter, Literal, Not, Or, Present, ValuePath
from provisor.filter.binder import SCHEMAS_ATTRIBUTE
from provisor.schema.model import COMPLEX, DATETIME, AttrPath, ResourceType
from provisor.storage import indexing
from provisor.storage.filter_values import Bool, FilterSql, Make
from provisor.storage.filter_values import ColumnValue as _Column
from provisor.storage.filter_values import RowValue as _Row
from provisor.storage.filter_values import Val as _Val
from provisor.storage.filter_values import definite as _definite
from provisor.storage.kind import backend_named
from provisor.storage.tables import attribute_index, group_members, resources


@dataclass(frozen=True)
class SqlContext:
    dialect: str  # the engine's dialect name: "sqlite" | "postgresql"
    tenant_id: str
    resource_type: ResourceType
    #: The database's share of the compiler (`Backend.filters`), looked up once per context.
    sql: FilterSql = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        found = backend_named(self.dialect)
        if found is None:
            raise ValueError(f"no database kind named {self.dialect!r}")
        object.__setattr__(self, "sql", found.filters)


# ---- the compiler ----------------------------------------------------------------------------


class _Compiler:
    def __init__(self, ctx: SqlContext) -> None:
        self.ctx = ctx
        self.sql = ctx.sql

    # -- sources: where the candidate values of a path come from

    def doc(self) -> _Val:
        return self.sql.document()

    def elements(self, container: _Val, make: Make) -> Bool:
        """EXISTS an element of the JSON array `container` for which `make` holds."""
        return self.sql.elements(container, make)

    def membership(self, path: AttrPath, make: Make) -> Bool:
        """`members` of a Group / `groups` of a User, answered from `group_members`."""
        gm = group_members.c
        if path.attribute.name == "members":
            link = gm.group_id == resources.c.id
            row = _Row(
                {
                    "value": _Column(gm.member_id, lowercase_data=True, nullable=False),
                    "type": _Column(gm.member_type, nullable=False),
                }
            )
        else:
            link = gm.member_id == resources.c.id
            row = _Row({"value": _Column(gm.group_id, lowercase_data=True, nullable=False)})
        target: _Val = row.field(path.sub_attribute.name) if path.sub_attribute else row
        query = select(literal(1)).where(gm.tenant_id == resources.c.tenant_id, link, make(target))
        return exists(query)

    def is_membership(self, path: AttrPath) -> bool:
        return is_membership(self.ctx.resource_type, path)

    def common(self, path: AttrPath) -> _Val | None:
        """id and meta.* live in columns, not in the document."""
        if path.urn is not None:
            return None
        if path.attribute.name == "id":
            return _Column(resources.c.id)
        if path.attribute.name != "meta":
            return None
        sub = path.sub_attribute.name if path.sub_attribute else None
        if sub == "created":
            return _Column(resources.c.created)
        if sub == "lastModified":
            return _Column(resources.c.last_modified)
        if sub == "resourceType":
            return _Column(resources.c.resource_type)
        if sub == "version":
            version = literal('W/"', String) + cast(resources.c.version, String) + literal('"', String)
            return _Column(version)
        if sub is None:
            return _Row({})
        raise invalid_filter(f"attribute {path} is not filterable")

    def schemas(self, make: Make) -> Bool:
        """`schemas` is not stored: the core URN always, an extension URN when its data is there."""
        rt = self.ctx.resource_type
        options = [make(_Column(literal(rt.schema.id, String)))]
        for ext in rt.extensions:
            carried = _definite(self.doc().field(ext.schema.id).non_empty())
            options.append(and_(carried, make(_Column(literal(ext.schema.id, String)))))
        return or_(*options)

    def any_value(self, path: AttrPath, make: Make) -> Bool:
        """True when some value of `path` satisfies `make` (multi-valued: any element)."""
        if path.attribute is SCHEMAS_ATTRIBUTE:
            return self.schemas(make)
        column = self.common(path)
        if column is not None:
            return make(column)
        if self.is_membership(path):
            return self.membership(path, make)
        base = self.doc()
        if path.urn:
            base = base.field(path.urn)
        attr = base.field(path.attribute.name)
        sub = path.sub_attribute
        if path.attribute.multi_valued:
            return self.elements(attr, lambda el: make(el.field(sub.name)) if sub else make(el))
        return make(attr.field(sub.name) if sub else attr)

    def each_element(self, path: AttrPath, make: Make) -> Bool:
        """True when some element (object) of a complex attribute satisfies `make`."""
        guarded: Make = lambda el: and_(el.is_object(), make(el))  # noqa: E731
        if self.is_membership(path):
            return self.membership(AttrPath(path.urn, path.attribute), guarded)
        if self.common(path) is not None or path.attribute is SCHEMAS_ATTRIBUTE:
            raise invalid_filter(f"attribute {path} cannot take a value filter")
        base = self.doc()
        if path.urn:
            base = base.field(path.urn)
        attr = base.field(path.attribute.name)
        if path.attribute.multi_valued:
            return self.elements(attr, guarded)
        return guarded(attr)

    # -- leaves

    def string_cmp(self, val: _Val, op: str, lit: str, case_exact: bool) -> Bool:
        text = val.text()
        if not case_exact:
            lit = lit.lower()
            if not val.lowercase_data:
                text = self.sql.lower(text)
        if op == "eq":
            return text == literal(lit, String)
        if op in ("co", "sw", "ew") and lit == "":
            return true()
        if op == "co":
            return self.sql.position(text, literal(lit, String)) > 0
        if op == "sw":
            return func.substr(text, 1, len(lit)) == literal(lit, String)
        if op == "ew":
            return self.sql.tail(text, len(lit)) == literal(lit, String)
        text = self.sql.code_point_order(text)
        bound = literal(lit, String)
        return {"gt": text > bound, "ge": text >= bound, "lt": text < bound, "le": text <= bound}[op]

    def number(self, value: int | float | Decimal) -> ColumnElement[Any]:
        return self.sql.number(value)

    def leaf(self, val: _Val, op: str, lit: Literal, case_exact: bool) -> Bool:
        if isinstance(lit, bool):
            return _definite(val.is_bool(lit)) if op == "eq" else false()
        if isinstance(lit, int | float | Decimal):
            num, bound = val.num(), self.number(lit)
            ops = {
                "eq": num == bound,
                "gt": num > bound,
                "ge": num >= bound,
                "lt": num < bound,
                "le": num <= bound,
            }
            return _definite(and_(val.is_num(), ops[op])) if op in ops else false()
        if isinstance(lit, str):
            if isinstance(val, _Column) and not val.nullable:
                return self.string_cmp(val, op, lit, case_exact)
            return _definite(and_(val.is_str(), self.string_cmp(val, op, lit, case_exact)))
        return false()

    # -- the attribute index

    def indexed(self, path: AttrPath, node: Compare | Present) -> Bool | None:
        if not indexing.is_indexed(self.ctx.resource_type, path):
            return None
        ai = attribute_index.c
        rows = select(ai.resource_id).where(
            ai.tenant_id == self.ctx.tenant_id,
            ai.resource_type == self.ctx.resource_type.name,
            ai.attr == path.dotted,
        )
        if isinstance(node, Present):
            # From the document, row by row: as `id IN (the attribute's index rows)` PostgreSQL
            # without statistics expected one row on each side and ran a nested loop reading the
            # attribute's rows again for every resource (`userName pr` did not finish in 30 s at
            # 30,000 users, tests/db/test_plans.py).
            return None
        if not isinstance(node.value, str) or node.value == "" or node.op not in ("eq", "sw"):
            return None
        norm = indexing.normalise(path.target, node.value)
        limit = indexing.MAX_INDEXED_LENGTH
        if node.op == "eq":
            if len(norm) < limit:
                return resources.c.id.in_(rows.where(ai.value_norm == norm))
            # Long values are stored truncated: the index narrows, the document decides.
            return (
                None
                if len(norm) > limit
                else and_(resources.c.id.in_(rows.where(ai.value_norm == norm)), self.doc_compare(path, node))
            )
        if len(norm) > limit:
            return None
        return resources.c.id.in_(prefix_rows(self.ctx, path.dotted, norm))

    # -- the visitor

    def doc_compare(self, path: AttrPath, node: Compare) -> Bool:
        exact = path.target.case_exact or path.target.type == DATETIME
        if node.op == "ne":
            some = self.any_value(path, lambda v: _definite(v.non_null()))
            differs = self.any_value(
                path,
                lambda v: and_(_definite(v.non_null()), not_(self.leaf(v, "eq", node.value, exact))),
            )
            return or_(not_(some), differs)
        return self.any_value(path, lambda v: self.leaf(v, node.op, node.value, exact))

    def compile(self, node: Filter, element: _Val | None = None) -> Bool:
        if isinstance(node, And):
            return and_(self.compile(node.left, element), self.compile(node.right, element))
        if isinstance(node, Or):
            return or_(self.compile(node.left, element), self.compile(node.right, element))
        if isinstance(node, Not):
            return not_(self.compile(node.expr, element))
        path = node.attr.path
        if path is None:
            raise ValueError(f"filter is not bound: {node.attr}")
        if isinstance(node, ValuePath):
            if element is not None:
                raise invalid_filter("nested value filters are not supported")
            return self.each_element(path, lambda el: self.compile(node.filter, el))
        if element is not None:
            return self.element_leaf(path, node, element)
        if path.target.type == COMPLEX and isinstance(node, Present) and self.is_membership(path):
            return self.membership(path, lambda v: true())
        fast = self.indexed(path, node) if not self.is_membership(path) else None
        if fast is not None:
            return fast
        if isinstance(node, Present):
            return self.any_value(path, lambda v: _definite(v.non_empty()))
        return self.doc_compare(path, node)

    def element_leaf(self, path: AttrPath, node: Compare | Present, element: _Val) -> Bool:
        """A leaf inside `attr[...]`: its path names a sub-attribute of the element."""
        assert path.sub_attribute is not None
        val = element.field(path.sub_attribute.name)
        if isinstance(node, Present):
            return _definite(val.non_empty())
        exact = path.target.case_exact or path.target.type == DATETIME
        if node.op == "ne":
            some = _definite(val.non_null())
            return or_(not_(some), and_(some, not_(self.leaf(val, "eq", node.value, exact))))
        return self.leaf(val, node.op, node.value, exact)


def _successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (binary order)."""
    code = ord(prefix[-1]) + 1
    if code == 0xD800:
        code = 0xE000
    if code > 0x10FFFF:
        return None
    return prefix[:-1] + chr(code)


def is_membership(rt: ResourceType, path: AttrPath) -> bool:
    """Group `members` and User `groups` live in `group_members`, not in the document."""
    return path.urn is None and (
        (rt.name == "Group" and path.attribute.name == "members")
        or (rt.name == "User" and path.attribute.name == "groups")
    )


def indexed_equality(node: Filter, rt: ResourceType) -> tuple[str, str] | None:
    """`(attr, value_norm)` when the whole filter is `attr eq "value"` on an indexed attribute and
    the value fits the index: exactly the case `compile_filter` answers from `attribute_index`
    alone. It is the IdPs' existence check, so it gets a prebuilt statement (storage/resources.py).
    """
    if not isinstance(node, Compare) or node.op != "eq" or node.attr.path is None:
        return None
    path = node.attr.path
    if is_membership(rt, path) or not indexing.is_indexed(rt, path):
        return None
    if not isinstance(node.value, str) or not node.value:
        return None
    norm = indexing.normalise(path.target, node.value)
    return (path.dotted, norm) if len(norm) < indexing.MAX_INDEXED_LENGTH else None


def prefix_rows(ctx: SqlContext, attr: str, norm: str) -> Select[tuple[str]]:
    """The ids of the resources with an `attr` index value starting with `norm` (a resource with
    several such values, e.g. two emails, appears once per value).

    A prefix's values are one range in code point order, the column's order on both engines
    (BINARY on SQLite, COLLATE "C" on PostgreSQL since migration 0015), so the B-tree serves it; the
    `substr` check re-tests each row. A `LIKE 'p%'` would not be served: SQLite's LIKE ignores
    case, and PostgreSQL's needs a "C" index and a constant pattern.
    """
    ai = attribute_index.c
    rows = select(ai.resource_id.label("id")).where(
        ai.tenant_id == ctx.tenant_id,
        ai.resource_type == ctx.resource_type.name,
        ai.attr == attr,
        func.substr(ai.value_norm, 1, len(norm)) == norm,
    )
    value = ctx.sql.code_point_order(ai.value_norm)
    upper = _successor(norm)
    return rows.where(value >= norm if upper is None else and_(value >= norm, value < upper))


def indexed_prefix(node: Filter, ctx: SqlContext) -> Select[tuple[str]] | None:
    """`prefix_rows` when the whole filter is `attr sw "value"` on an indexed attribute and the
    value fits the index. When the range is narrow, the list and count statements then start from
    it (storage/resources.py `narrow_driver`) whatever the planner's statistics say."""
    if not isinstance(node, Compare) or node.op != "sw" or node.attr.path is None:
        return None
    path = node.attr.path
    if is_membership(ctx.resource_type, path) or not indexing.is_indexed(ctx.resource_type, path):
        return None
    if not isinstance(node.value, str) or not node.value:
        return None
    norm = indexing.normalise(path.target, node.value)
    return prefix_rows(ctx, path.dotted, norm) if len(norm) <= indexing.MAX_INDEXED_LENGTH else None


def membership_rows(node: Filter, ctx: SqlContext) -> Select[tuple[str]] | None:
    """The ids of the resources matching the whole filter when it is `groups.value eq "g"` on a
    User (the members of g) or `members.value eq "m"` on a Group (the groups containing m), from
    `group_members` by its keys: (tenant_id, group_id, member_id) and ix_group_members_member.
    As for `indexed_prefix`, the list and count then start from these rows when they are few, and
    a count of many is read from them alone, whatever the planner's statistics say: tested per
    resource, a group of a tenth of the users was counted by reading every user of the tenant."""
    if not isinstance(node, Compare) or node.op != "eq" or node.attr.path is None:
        return None
    path = node.attr.path
    if not is_membership(ctx.resource_type, path) or path.sub_attribute is None:
        return None
    if path.sub_attribute.name != "value" or not isinstance(node.value, str):
        return None
    gm = group_members.c
    value = node.value if path.target.case_exact else node.value.lower()  # as `membership` compares
    # In the order of the index that finds them: with the probe's LIMIT (storage/resources.py
    # `narrow_driver`) the planner then reads the index, even when statistics from a smaller table
    # make it expect the group to be a large share of the rows.
    if path.attribute.name == "members":
        return (
            select(gm.group_id.label("id"))
            .where(gm.tenant_id == ctx.tenant_id, gm.member_id == value)
            .order_by(gm.group_id)
        )
    return (
        select(gm.member_id.label("id"))
        .where(gm.tenant_id == ctx.tenant_id, gm.group_id == value, gm.member_type == ctx.resource_type.name)
        .order_by(gm.member_id)
    )


def broad_prefix(node: Filter, ctx: SqlContext) -> ColumnElement[bool]:
    """The condition of an `indexed_prefix` filter whose range is broad (storage/resources.py
    `narrow_driver` said no): a test of each resource's document, with no range a planner could
    mistake for a narrow one. Given the range, PostgreSQL without statistics estimated a few rows
    and fetched each of 100,000 matches by primary key: 4 s against 0.3 s; given the attribute's
    index rows, it read them again for every resource (see `_Compiler.indexed`)."""
    assert isinstance(node, Compare) and node.attr.path is not None and isinstance(node.value, str)
    return _Compiler(ctx).doc_compare(node.attr.path, node)


def compile_filter(node: Filter, ctx: SqlContext) -> ColumnElement[bool]:
    """A boolean over `resources` for a bound filter (add tenant/resource-type conditions yourself)."""
    return _Compiler(ctx).compile(node)


def sort_expression(path: AttrPath, ctx: SqlContext) -> ColumnElement[Any]:
    """An ORDER BY key for `sortBy`: single-valued values, or a multi-valued attribute's primary
    (else first) element's `value`; case-folded unless caseExact. Missing values sort as NULL.
    Unsortable paths (complex, membership, meta.location) are 400 invalidValue."""
    comp = _Compiler(ctx)
    try:
        column = comp.common(path)
    except ScimError:
        column = _Row({})
    if (
        path.urn is None
        and path.attribute.name == "meta"
        and path.sub_attribute is not None
        and (path.sub_attribute.name == "version")
    ):
        return resources.c.version
    if isinstance(column, _Column):
        return column.expr
    if column is not None or comp.is_membership(path) or path.attribute is SCHEMAS_ATTRIBUTE:
        raise invalid_value(f"cannot sort by {path}")
    attribute, sub = path.attribute, path.sub_attribute
    if attribute.multi_valued:
        if sub is None:
            sub = attribute.sub("value")
        if sub is None and attribute.type == COMPLEX:
            raise invalid_value(f"cannot sort by {path}")
    elif attribute.type == COMPLEX and sub is None:
        raise invalid_value(f"cannot sort by {path}")
    target = sub or attribute
    base = comp.doc()
    if path.urn:
        base = base.field(path.urn)
    container = base.field(attribute.name)
    if attribute.multi_valued:
        value = _primary_value(comp, container, sub.name if sub else None)
    else:
        value = container.field(sub.name) if sub else container
    return _sort_key(comp, value, target.type, target.case_exact)


def _primary_value(comp: _Compiler, container: _Val, sub: str | None) -> _Val:
    """The JSON of the primary element's sub-attribute, or of the first element's."""
    return comp.sql.primary(container, sub)


def _sort_key(comp: _Compiler, value: _Val, kind: str, case_exact: bool) -> ColumnElement[Any]:
    if kind in ("integer", "decimal"):
        return value.num()
    if kind == "boolean":
        return case((value.is_bool(True), literal(1)), (value.is_bool(False), literal(0)), else_=None)
    text: ColumnElement[Any] = case((value.is_str(), value.text()), else_=None)
    if not case_exact and kind != DATETIME:
        text = comp.sql.lower(text)
    return comp.sql.code_point_order(text)
