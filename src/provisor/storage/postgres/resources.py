"""PostgreSQL's statements and writes of resources (contracts.py `ResourceStatements`).

A create or an update is one statement (CTEs writing the resource, its index rows and its outbox
event): a statement is its own transaction, so it needs no BEGIN and COMMIT round trips, and
concurrent ones share a round trip and a commit (storage/coalesce.py). Reads inside a write
transaction lock the resource's row. Lookups and ranges are driven from the attribute index with
LATERAL subqueries (OFFSET 0 keeps each one), so plans do not depend on statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    Column,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    select,
    text,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.util import ClauseAdapter

from provisor.events.model import EventOp
from provisor.storage.errors import UniqueViolation
from provisor.storage.outbox_sql import events_insert, op_literal
from provisor.storage.postgres.driver import reader
from provisor.storage.resource_rows import (
    LOCK,
    LOCK_WITH_GROUPS,
    LOOKUP_PARAMS,
    PAGE_OF_MATCHES,
    PAGE_PARAMS,
    ROW_COLUMNS,
    ROW_TYPES,
    IndexRow,
    StoredResource,
    conflicts_as_uniqueness,
    count_by_indexed_value,
    event_params,
    page_by_indexed_value,
    unique_attributes,
)
from provisor.storage.statements import DirectStatement, call_column
from provisor.storage.tables import resources

__all__ = [
    "COUNT_BY_INDEXED_VALUE",
    "CREATE",
    "CREATE_CLAIMING",
    "LIST_BY_INDEXED_VALUE",
    "LIST_BY_INDEXED_VALUE_WITH_GROUPS",
    "LOCK",
    "LOCK_WITH_GROUPS",
    "UPDATE",
    "UPDATE_DOC_ONLY",
    "create_at_once",
    "driven",
    "unfiltered_page",
    "update_at_once",
]


def _index_arrays(rows: Sequence[IndexRow]) -> dict[str, list[Any]]:
    """Index rows as the three arrays the statements unnest."""
    return {
        "attrs": [attr for attr, _, _ in rows],
        "values": [value for _, value, _ in rows],
        "uniques": [unique for _, _, unique in rows],
    }


#: The `_index_arrays` parameters, typed.
_INDEX_ARRAY_PARAMS = (
    bindparam("attrs", type_=postgresql.ARRAY(String)),
    bindparam("values", type_=postgresql.ARRAY(Text)),
    bindparam("uniques", type_=postgresql.ARRAY(Boolean)),
)


#: A whole create (the resource, its index rows, its outbox event) as one statement. The event
#: row is produced only after every index row went in: a uniqueness conflict then fails the
#: statement before the event takes a sequence number, which would leave a gap in the change feed
#: that its readers wait out (docs/events.md).
CREATE = DirectStatement(
    text(
        """
        WITH created AS (
            INSERT INTO resources (tenant_id, id, resource_type, version, created, last_modified, doc)
            VALUES (:tenant_id, :resource_id, :resource_type, 1, :at, :at, :doc)
            RETURNING id
        ), indexed AS (
            INSERT INTO attribute_index (tenant_id, resource_type, attr, value_norm, resource_id, is_unique)
            SELECT :tenant_id, :resource_type, x.attr, x.value_norm, created.id, x.is_unique
            FROM created, unnest(:attrs, :values, :uniques) AS x(attr, value_norm, is_unique)
            RETURNING 1
        )
        """
        + events_insert("(SELECT count(*) FROM indexed) AS done", op=op_literal(EventOp.CREATED), version="1")
    ).bindparams(
        *(
            bindparam(name, type_=String)
            for name in ("tenant_id", "resource_id", "resource_type", "at", "actor")
        ),
        bindparam("doc", type_=postgresql.JSONB),
        bindparam("payload", type_=postgresql.JSONB),
        *_INDEX_ARRAY_PARAMS,
    )
)


#: The same when the resource has at most one unique index row (a user's userName, a group's
#: displayName): that row is claimed first with ON CONFLICT DO NOTHING, and the rest is written
#: only if it was. A taken value is then "no row" rather than an error: the statement can share a
#: round trip and a commit with concurrent creates (storage/coalesce.py), where a failing call would
#: roll the others back after they took event sequence numbers.
CREATE_CLAIMING = DirectStatement(
    text(
        """
        WITH claimed AS (
            INSERT INTO attribute_index (tenant_id, resource_type, attr, value_norm, resource_id, is_unique)
            SELECT :tenant_id, :resource_type, x.attr, x.value_norm, :resource_id, true
            FROM unnest(:unique_attrs, :unique_values) AS x(attr, value_norm)
            ON CONFLICT (tenant_id, resource_type, attr, value_norm) WHERE is_unique DO NOTHING
            RETURNING 1
        ), free AS (
            SELECT 1 FROM (SELECT count(*) AS n FROM claimed) AS c WHERE c.n = cardinality(:unique_attrs)
        ), created AS (
            INSERT INTO resources (tenant_id, id, resource_type, version, created, last_modified, doc)
            SELECT :tenant_id, :resource_id, :resource_type, 1, :at, :at, :doc FROM free
            RETURNING id
        ), indexed AS (
            INSERT INTO attribute_index (tenant_id, resource_type, attr, value_norm, resource_id, is_unique)
            SELECT :tenant_id, :resource_type, x.attr, x.value_norm, created.id, false
            FROM created, unnest(:attrs, :values) AS x(attr, value_norm)
            RETURNING 1
        )
        """
        + events_insert(
            "created, (SELECT count(*) FROM indexed) AS done",
            "seq, :call",
            op=op_literal(EventOp.CREATED),
            version="1",
        )
    ).bindparams(
        *(
            bindparam(name, type_=String)
            for name in ("tenant_id", "resource_id", "resource_type", "at", "actor")
        ),
        bindparam("doc", type_=postgresql.JSONB),
        bindparam("payload", type_=postgresql.JSONB),
        bindparam("unique_attrs", type_=postgresql.ARRAY(String)),
        bindparam("unique_values", type_=postgresql.ARRAY(Text)),
        bindparam("attrs", type_=postgresql.ARRAY(String)),
        bindparam("values", type_=postgresql.ARRAY(Text)),
        call_column(),
    ),
    lock_order=lambda p: (p["tenant_id"], p["resource_type"], p["unique_attrs"], p["unique_values"]),
)


async def create_at_once(
    engine: AsyncEngine,
    *,
    tenant_id: str,
    stored: StoredResource,
    index: Sequence[IndexRow],
    actor: str | None,
    event_payload: dict[str, Any],
) -> None:
    """One statement: `CREATE_CLAIMING` (batched) when at most one index row is unique."""
    unique = [(attr, value) for attr, value, is_unique in index if is_unique]
    params: dict[str, Any] = {
        "tenant_id": tenant_id,
        "resource_id": stored.id,
        "resource_type": stored.resource_type,
        "at": stored.created,
        "actor": actor,
        "doc": stored.doc,
        "payload": event_payload,
    }
    if len(unique) <= 1:
        params["unique_attrs"] = [attr for attr, _ in unique]
        params["unique_values"] = [value for _, value in unique]
        params["attrs"] = [attr for attr, _, is_unique in index if not is_unique]
        params["values"] = [value for _, value, is_unique in index if not is_unique]
        if not await reader(engine).fetch_batched(CREATE_CLAIMING, params):
            raise UniqueViolation(stored.resource_type, unique_attributes(index))
        return
    with conflicts_as_uniqueness(stored.resource_type, index):
        await reader(engine).fetch(CREATE, {**params, **_index_arrays(index)})


def _resource_key(params: Mapping[str, Any]) -> tuple[str, str]:
    """The order batched updates lock their rows in (the primary key's)."""
    return params["tenant_id"], params["resource_id"]


#: The parameters of both one-statement updates below.
_UPDATE_PARAMS: tuple[BindParameter[Any], ...] = (
    *(
        bindparam(name, type_=String)
        for name in ("tenant_id", "resource_id", "resource_type", "at", "actor", "op")
    ),
    bindparam("version", type_=Integer),
    bindparam("expected", type_=Integer),
    bindparam("doc", type_=postgresql.JSONB),
    bindparam("payload", type_=postgresql.JSONB),
    call_column(),
)


#: A whole update (the new version if the stored one is still `expected`, the index rows that
#: changed, the outbox event) as one statement. No row comes back when another write got in
#: first; the event, again, is produced only after the index rows (see `CREATE`).
UPDATE = DirectStatement(
    text(
        """
        WITH updated AS (
            UPDATE resources SET version = :version, last_modified = :at, doc = :doc
            WHERE tenant_id = :tenant_id AND id = :resource_id AND resource_type || '' = :resource_type
              AND version = :expected
            RETURNING id
        ), removed AS (
            DELETE FROM attribute_index AS ai
            USING updated, unnest(:gone_attrs, :gone_values) AS g(attr, value_norm)
            WHERE ai.tenant_id = :tenant_id AND ai.resource_id = updated.id
              AND ai.attr = g.attr AND ai.value_norm = g.value_norm
            RETURNING 1
        ), indexed AS (
            INSERT INTO attribute_index (tenant_id, resource_type, attr, value_norm, resource_id, is_unique)
            SELECT :tenant_id, :resource_type, x.attr, x.value_norm, updated.id, x.is_unique
            FROM updated, unnest(:attrs, :values, :uniques) AS x(attr, value_norm, is_unique)
            RETURNING 1
        )
        """
        + events_insert(
            "updated, (SELECT count(*) FROM removed) AS r, (SELECT count(*) FROM indexed) AS i", "seq, :call"
        )
    ).bindparams(
        *_UPDATE_PARAMS,
        bindparam("gone_attrs", type_=postgresql.ARRAY(String)),
        bindparam("gone_values", type_=postgresql.ARRAY(Text)),
        *_INDEX_ARRAY_PARAMS,
    ),
    lock_order=_resource_key,
)


#: The same when no index row changes (most IdP PATCHes: `active`, names, title, phone numbers):
#: without the index CTEs PostgreSQL starts a smaller plan, about 16% less of its CPU per update.
UPDATE_DOC_ONLY = DirectStatement(
    text(
        """
        WITH updated AS (
            UPDATE resources SET version = :version, last_modified = :at, doc = :doc
            WHERE tenant_id = :tenant_id AND id = :resource_id AND resource_type || '' = :resource_type
              AND version = :expected
            RETURNING id
        )
        """
        + events_insert("updated", "seq, :call")
    ).bindparams(*_UPDATE_PARAMS),
    lock_order=_resource_key,
)


async def update_at_once(
    engine: AsyncEngine,
    tenant_id: str,
    *,
    current: StoredResource,
    stored: StoredResource,
    added: Sequence[IndexRow],
    gone: Sequence[IndexRow],
    op: EventOp,
    actor: str | None,
    event_payload: dict[str, Any],
) -> bool:
    """One statement: `UPDATE_DOC_ONLY` or `UPDATE`, batched unless it may fail on a unique value."""
    params: dict[str, Any] = {
        **event_params(tenant_id, stored, op, actor, event_payload),
        "expected": current.version,
        "doc": stored.doc,
    }
    if not added and not gone:
        return bool(await reader(engine).fetch_batched(UPDATE_DOC_ONLY, params))
    params["gone_attrs"] = [a for a, _, _ in gone]
    params["gone_values"] = [v for _, v, _ in gone]
    params.update(_index_arrays(added))
    if any(unique for _, _, unique in added):
        # A unique value taken by another resource fails the statement: never in a batch
        # (storage/coalesce.py), where it would roll back the others.
        return bool(await reader(engine).fetch(UPDATE, params))
    return bool(await reader(engine).fetch_batched(UPDATE, params))


#: FROM and WHERE of the resources that have the index row (attr, value_norm), driven from that
#: row by a LATERAL subquery (OFFSET 0 keeps the planner from pulling it up into a join it may
#: reorder): see storage/resources.py `list_by_indexed_value` for why.
_MATCHING = """
            FROM attribute_index AS ai CROSS JOIN LATERAL (
                SELECT id, version, created, last_modified, doc FROM resources
                WHERE resources.tenant_id = ai.tenant_id AND resources.id = ai.resource_id
                  AND resources.resource_type || '' = :resource_type
                OFFSET 0
            ) AS r
            WHERE ai.tenant_id = :tenant_id AND ai.resource_type = :resource_type
              AND ai.attr = :attr AND ai.value_norm = :value_norm"""

LIST_BY_INDEXED_VALUE = page_by_indexed_value(_MATCHING)
COUNT_BY_INDEXED_VALUE = count_by_indexed_value(_MATCHING)
#: The groups of each resource of a page: a LATERAL subquery per resource (OFFSET 0 keeps it one).
#: As plain joins, statistics taken while the table was small (whose most common values then stand
#: for a large share of it) made PostgreSQL hash-join a sequential scan of `group_members` for a
#: one-user page (tests/db/test_plans.py).
LIST_BY_INDEXED_VALUE_WITH_GROUPS = DirectStatement(
    text(
        f"""
            SELECT page.id, page.version, page.created, page.last_modified, page.doc,
                   gm.group_id, gm.doc ->> 'displayName' AS group_name, :call
            FROM ({PAGE_OF_MATCHES.format(matching=_MATCHING)}) AS page
            LEFT JOIN LATERAL (
                SELECT gm.group_id, grp.doc FROM group_members AS gm
                LEFT JOIN resources AS grp ON grp.tenant_id = gm.tenant_id AND grp.id = gm.group_id
                WHERE gm.tenant_id = :tenant_id AND gm.member_id = page.id
                OFFSET 0
            ) AS gm ON true
            ORDER BY page.created, page.id, group_name, gm.group_id"""
    )
    .bindparams(*LOOKUP_PARAMS, *PAGE_PARAMS)
    .columns(**ROW_TYPES, group_id=String, group_name=String, call=Integer)
)


def driven(
    driver: Select[Any], scope: Sequence[ColumnElement[bool]], conditions: Sequence[ColumnElement[bool]]
) -> tuple[Select[Any], ClauseAdapter | None]:
    """Each resource of the range by primary key in a LATERAL subquery (OFFSET 0 keeps it one)."""
    hits = driver.distinct().subquery("hits")
    rows = select(*ROW_COLUMNS).where(*scope, resources.c.id == hits.c.id, *conditions).offset(0).lateral("r")
    return select().select_from(hits.join(rows, true())), ClauseAdapter(rows)


def unfiltered_page(
    tenant_id: str,
    resource_type: str,
    order_by: Sequence[ColumnElement[Any]],
    keys: list[Column[Any]],
    offset: int,
    limit: int,
) -> Select[Any] | None:
    """An unfiltered page as a deferred join: the page's ids first, from the index alone, then their
    rows by primary key. A plain `OFFSET` fetches every skipped row from the table (offset 50,000
    of 100,000: 21 ms with 3,769 buffers, against 7 ms and 1,038 this way)."""
    ids = (  # only the order's columns and the id: all in the index, so no row is read for them
        select(*dict.fromkeys([resources.c.id, *keys]))
        .where(resources.c.tenant_id == tenant_id, resources.c.resource_type == resource_type)
        .order_by(*order_by)
        .offset(offset)
        .limit(limit)
        .subquery("page_ids")
    )
    adapt = ClauseAdapter(ids)
    # Each id's row by primary key, in a LATERAL subquery (OFFSET 0 keeps it one): as a plain join,
    # a generic plan (a prepared statement's after five runs, which cannot know LIMIT's value)
    # expects a tenth of the table and hash-joins it with a sequential scan of `resources`.
    rows = (
        select(*ROW_COLUMNS)
        .where(resources.c.tenant_id == tenant_id, resources.c.id == ids.c.id)
        .offset(0)
        .lateral("r")
    )
    return (
        select(*rows.c)
        .select_from(ids.join(rows, true()))
        .order_by(*(adapt.traverse(element) for element in order_by))
    )
