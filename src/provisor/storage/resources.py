"""Resource rows: the stored document plus its index rows, written in the caller's transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    Column,
    ColumnElement,
    Integer,
    Join,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.type_api import TypeEngine
from sqlalchemy.sql.util import ClauseAdapter

from provisor.events.model import EventOp, event_row
from provisor.storage.direct import (
    BY_KEY_ROWS,
    DirectStatement,
    call_column,
    execute,
    execute_many,
    reader,
    write_in_sqlite_thread,
)
from provisor.storage.errors import NotFound, UniqueViolation, unique_violations
from provisor.storage.outbox import APPEND_EVENT, events_insert, op_literal
from provisor.storage.resource_rows import Groups as _Groups
from provisor.storage.resource_rows import IndexRow as IndexRow
from provisor.storage.resource_rows import ResourceWrite as ResourceWrite
from provisor.storage.resource_rows import StoredResource as StoredResource
from provisor.storage.tables import attribute_index, group_members, resources
from provisor.storage.transactions import write_transaction

_ROW_COLUMNS = (
    resources.c.id,
    resources.c.version,
    resources.c.created,
    resources.c.last_modified,
    resources.c.doc,
)


def _stored(resource_type: str, row: Sequence[Any]) -> StoredResource:
    return StoredResource(
        id=row[0],
        resource_type=resource_type,
        version=row[1],
        created=row[2],
        last_modified=row[3],
        doc=row[4],
    )


def _type_is(value: Any) -> ColumnElement[bool]:
    """`resources.resource_type = value` for statements by primary key, as an expression no index
    serves. A plain comparison also matched the leading columns of ix_resources_type_created and
    _modified (tenant_id, resource_type): PostgreSQL without statistics (a new database before
    autovacuum's first ANALYZE) costed those the same as the primary key and took one, reading
    the tenant's index entries to find one id, so GET by id and PATCH cost in proportion to the
    tenant (tests/db/test_plans.py). The SQL statements below spell it `resource_type || ''`."""
    unindexed: ColumnElement[str] = resources.c.resource_type.concat(literal_column("''"))
    condition: ColumnElement[bool] = unindexed == value
    return condition


def _params(table: Table, *names: str) -> dict[str, BindParameter[Any]]:
    return {name: bindparam(name, type_=table.c[name].type) for name in names}


#: The write path's statements, built once and run on the driver connection (storage/direct.py).
#: One index row (also used by the batch writes, storage/batch.py).
INSERT_INDEX = DirectStatement(
    insert(attribute_index).values(
        _params(
            attribute_index, "tenant_id", "resource_type", "attr", "value_norm", "resource_id", "is_unique"
        )
    )
)
_INSERT = DirectStatement(
    insert(resources).values(
        _params(resources, "tenant_id", "id", "resource_type", "version", "created", "last_modified", "doc")
    )
)
_KEY = and_(
    resources.c.tenant_id == bindparam("tenant_id"),
    resources.c.id == bindparam("resource_id"),
    _type_is(bindparam("resource_type")),
)
_UPDATE = DirectStatement(
    update(resources).where(_KEY).values(_params(resources, "version", "last_modified", "doc"))
)
_UPDATE_IF_VERSION = DirectStatement(
    update(resources)
    .where(_KEY, resources.c.version == bindparam("expected"))
    .values(_params(resources, "version", "last_modified", "doc"))
)
_DELETE_INDEX = DirectStatement(
    delete(attribute_index).where(
        attribute_index.c.tenant_id == bindparam("tenant_id"),
        attribute_index.c.resource_id == bindparam("resource_id"),
    )
)
_DELETE_INDEX_ROW = DirectStatement(
    delete(attribute_index).where(
        attribute_index.c.tenant_id == bindparam("tenant_id"),
        attribute_index.c.resource_id == bindparam("resource_id"),
        attribute_index.c.attr == bindparam("attr"),
        attribute_index.c.value_norm == bindparam("value_norm"),
    )
)


def _conflicts_as_uniqueness(resource_type: str, rows: Iterable[IndexRow]) -> AbstractContextManager[None]:
    """A unique-index violation while writing `rows` raises UniqueViolation naming their unique
    attributes."""
    return unique_violations(resource_type, _unique_attributes(rows))


def _unique_attributes(rows: Iterable[IndexRow]) -> list[str]:
    return [attr for attr, _, unique in rows if unique]


def _index_params(tenant_id: str, resource_type: str, resource_id: str, row: IndexRow) -> dict[str, Any]:
    attr, value, unique = row
    return {
        "tenant_id": tenant_id,
        "resource_type": resource_type,
        "attr": attr,
        "value_norm": value,
        "resource_id": resource_id,
        "is_unique": unique,
    }


def _index_arrays(rows: Sequence[IndexRow]) -> dict[str, list[Any]]:
    """Index rows as the three arrays the PostgreSQL statements unnest."""
    return {
        "attrs": [attr for attr, _, _ in rows],
        "values": [value for _, value, _ in rows],
        "uniques": [unique for _, _, unique in rows],
    }


#: The `_index_arrays` parameters, typed for PostgreSQL.
_INDEX_ARRAY_PARAMS = (
    bindparam("attrs", type_=postgresql.ARRAY(String)),
    bindparam("values", type_=postgresql.ARRAY(Text)),
    bindparam("uniques", type_=postgresql.ARRAY(Boolean)),
)


async def _write_index(
    conn: AsyncConnection, tenant_id: str, resource_type: str, resource_id: str, rows: Iterable[IndexRow]
) -> None:
    rows = list(rows)
    if not rows:
        return
    with _conflicts_as_uniqueness(resource_type, rows):
        await execute_many(
            conn, INSERT_INDEX, [_index_params(tenant_id, resource_type, resource_id, r) for r in rows]
        )


async def insert_resource(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    resource_type: str,
    resource_id: str,
    at: str,
    doc: dict[str, Any],
    index: Iterable[IndexRow],
    version: int = 1,
    created: str | None = None,
) -> StoredResource:
    """A new resource row (`version` and `created` differ from 1 and `at` for a restored one)."""
    created = at if created is None else created
    await execute(
        conn,
        _INSERT,
        {
            "tenant_id": tenant_id,
            "id": resource_id,
            "resource_type": resource_type,
            "version": version,
            "created": created,
            "last_modified": at,
            "doc": doc,
        },
    )
    await _write_index(conn, tenant_id, resource_type, resource_id, index)
    return StoredResource(resource_id, resource_type, version, created, at, doc)


#: PostgreSQL: a whole create (the resource, its index rows, its outbox event) as one statement.
#: A statement is its own transaction, so a create needs no BEGIN and COMMIT round trips. The
#: event row is produced only after every index row went in: a uniqueness conflict then fails the
#: statement before the event takes a sequence number, which would leave a gap in the change feed
#: that its readers wait out (docs/events.md).
_CREATE_PG = DirectStatement(
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
_CREATE_PG_CLAIMING = DirectStatement(
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
    """`insert_resource` of a new version-1 resource plus its `created` event, atomically and
    without a transaction's round trips: one statement on PostgreSQL, one call in the connection's
    thread on SQLite."""
    unique = [(attr, value) for attr, value, is_unique in index if is_unique]
    if engine.dialect.name == "sqlite":
        with _conflicts_as_uniqueness(stored.resource_type, index):
            await _create_on_sqlite(engine, tenant_id, stored, index, actor, event_payload)
        return
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
        if not await reader(engine).fetch_batched(_CREATE_PG_CLAIMING, params):
            raise UniqueViolation(stored.resource_type, _unique_attributes(index))
        return
    with _conflicts_as_uniqueness(stored.resource_type, index):
        await reader(engine).fetch(_CREATE_PG, {**params, **_index_arrays(index)})


async def _create_on_sqlite(
    engine: AsyncEngine,
    tenant_id: str,
    stored: StoredResource,
    index: Sequence[IndexRow],
    actor: str | None,
    event_payload: dict[str, Any],
) -> None:
    dialect = engine.dialect
    resource = _INSERT.compiled(dialect)
    rows = INSERT_INDEX.compiled(dialect)
    event = APPEND_EVENT.compiled(dialect)
    resource_args = resource.args(
        {
            "tenant_id": tenant_id,
            "id": stored.id,
            "resource_type": stored.resource_type,
            "version": 1,
            "created": stored.created,
            "last_modified": stored.last_modified,
            "doc": stored.doc,
        }
    )
    row_args = [rows.args(_index_params(tenant_id, stored.resource_type, stored.id, row)) for row in index]
    event_args = event.args(_event_params(tenant_id, stored, EventOp.CREATED, actor, event_payload))

    def steps(db: sqlite3.Connection) -> None:
        db.execute(resource.sql, resource_args)
        if row_args:
            db.executemany(rows.sql, row_args)
        db.execute(event.sql, event_args)

    await write_in_sqlite_thread(engine, steps)


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


#: PostgreSQL: a whole update (the new version if the stored one is still `expected`, the index
#: rows that changed, the outbox event) as one statement. No row comes back when another write got
#: in first; the event, again, is produced only after the index rows (see `_CREATE_PG`).
_UPDATE_PG = DirectStatement(
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
_UPDATE_PG_DOC_ONLY = DirectStatement(
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
    *,
    tenant_id: str,
    current: StoredResource,
    stored: StoredResource,
    index: Sequence[IndexRow],
    previous_index: Sequence[IndexRow],
    op: EventOp,
    actor: str | None,
    event_payload: dict[str, Any],
) -> bool | None:
    """`update_resource` from `current` to `stored` plus its event, atomically and without a
    transaction's round trips (see `create_at_once`). False when `current` is no longer the stored
    version (another write got in first); None when this path cannot express the change (an index
    value whose uniqueness flag changed must be deleted before it is inserted): in both cases the
    caller uses a locking transaction instead."""
    new, old = set(index), set(previous_index)
    added, gone = sorted(new - old), sorted(old - new)
    if {(a, v) for a, v, _ in added} & {(a, v) for a, v, _ in gone}:
        return None
    with _conflicts_as_uniqueness(current.resource_type, added):
        if engine.dialect.name == "sqlite":
            change = _Change(current, stored, added, gone, op, actor, event_payload)
            return await _update_on_sqlite(engine, tenant_id, change)
        params: dict[str, Any] = {
            **_event_params(tenant_id, stored, op, actor, event_payload),
            "expected": current.version,
            "doc": stored.doc,
        }
        if not added and not gone:
            return bool(await reader(engine).fetch_batched(_UPDATE_PG_DOC_ONLY, params))
        params["gone_attrs"] = [a for a, _, _ in gone]
        params["gone_values"] = [v for _, v, _ in gone]
        params.update(_index_arrays(added))
        if any(unique for _, _, unique in added):
            # A unique value taken by another resource fails the statement: never in a batch
            # (storage/coalesce.py), where it would roll back the others.
            return bool(await reader(engine).fetch(_UPDATE_PG, params))
        return bool(await reader(engine).fetch_batched(_UPDATE_PG, params))


@dataclass(frozen=True)
class _Change:
    current: StoredResource
    stored: StoredResource
    added: list[IndexRow]
    gone: list[IndexRow]
    op: EventOp
    actor: str | None
    payload: dict[str, Any]


class _LostRace(Exception):
    pass


async def _update_on_sqlite(engine: AsyncEngine, tenant_id: str, change: _Change) -> bool:
    dialect = engine.dialect
    current, stored = change.current, change.stored
    key = _key_params(tenant_id, current.resource_type, current.id)
    update_row = _UPDATE_IF_VERSION.compiled(dialect)
    drop = _DELETE_INDEX_ROW.compiled(dialect)
    rows = INSERT_INDEX.compiled(dialect)
    event = APPEND_EVENT.compiled(dialect)
    update_args = update_row.args(
        {
            **key,
            "version": stored.version,
            "expected": current.version,
            "last_modified": stored.last_modified,
            "doc": stored.doc,
        }
    )
    drop_args = [drop.args({**key, "attr": attr, "value_norm": value}) for attr, value, _ in change.gone]
    row_args = [
        rows.args(_index_params(tenant_id, current.resource_type, current.id, row)) for row in change.added
    ]
    event_args = event.args(_event_params(tenant_id, stored, change.op, change.actor, change.payload))

    def steps(db: sqlite3.Connection) -> None:
        if db.execute(update_row.sql, update_args).rowcount != 1:
            raise _LostRace
        if drop_args:
            db.executemany(drop.sql, drop_args)
        if row_args:
            db.executemany(rows.sql, row_args)
        db.execute(event.sql, event_args)

    try:
        await write_in_sqlite_thread(engine, steps)
    except _LostRace:
        return False
    return True


def _event_params(
    tenant_id: str, stored: StoredResource, op: EventOp, actor: str | None, payload: dict[str, Any] | None
) -> dict[str, Any]:
    return event_row(
        tenant_id=tenant_id,
        at=stored.last_modified,
        resource_type=stored.resource_type,
        resource_id=stored.id,
        op=op,
        version=stored.version,
        actor=actor,
        payload=payload,
    )


def _key(tenant_id: str, resource_type: str, resource_id: str) -> ColumnElement[bool]:
    return and_(
        resources.c.tenant_id == tenant_id,
        resources.c.id == resource_id,
        _type_is(resource_type),
    )


#: Built once: constructing statements per request costs more Python time than executing them.
_BY_KEY = and_(
    resources.c.tenant_id == bindparam("tenant_id"),
    resources.c.id == bindparam("resource_id"),
    _type_is(bindparam("resource_type")),
)
_FETCH = select(*_ROW_COLUMNS, call_column()).where(_BY_KEY)
_READ = DirectStatement(_FETCH, by_key=True)
_LOCK = DirectStatement(_FETCH.with_for_update())

_GROUP = resources.alias("grp")
#: A user with the groups that directly contain it, in one statement (one row per group, or one
#: row with NULL group columns): a GET by id is then a single round trip.
_WITH_GROUPS = (
    select(*_ROW_COLUMNS, group_members.c.group_id, _GROUP.c.doc["displayName"].as_string(), call_column())
    .select_from(
        resources.outerjoin(
            group_members,
            and_(
                group_members.c.tenant_id == resources.c.tenant_id,
                group_members.c.member_id == resources.c.id,
            ),
        ).outerjoin(
            _GROUP,
            and_(_GROUP.c.tenant_id == group_members.c.tenant_id, _GROUP.c.id == group_members.c.group_id),
        )
    )
    .where(_BY_KEY)
    .order_by(_GROUP.c.doc["displayName"].as_string(), group_members.c.group_id)
)
_READ_WITH_GROUPS = DirectStatement(_WITH_GROUPS, by_key=True)


#: The same, locking the resource row (PostgreSQL): a PATCH of a user reads its groups for the
#: answer in the statement that locks it.
_LOCK_WITH_GROUPS = DirectStatement(_WITH_GROUPS.with_for_update(of=resources))


def _key_params(tenant_id: str, resource_type: str, resource_id: str) -> dict[str, str]:
    return {"tenant_id": tenant_id, "resource_id": resource_id, "resource_type": resource_type}


async def fetch_resource(
    conn: AsyncConnection, tenant_id: str, resource_type: str, resource_id: str, *, for_update: bool = False
) -> StoredResource | None:
    query = _LOCK if for_update and conn.dialect.name == "postgresql" else _READ
    rows = await execute(conn, query, _key_params(tenant_id, resource_type, resource_id))
    return _stored(resource_type, rows[0]) if rows else None


async def read_resource(
    engine: AsyncEngine, tenant_id: str, resource_type: str, resource_id: str
) -> StoredResource | None:
    """`fetch_resource` outside any transaction, on the driver connection (storage/direct.py)."""
    rows = await reader(engine).fetch_batched(_READ, _key_params(tenant_id, resource_type, resource_id))
    return _stored(resource_type, rows[0]) if rows else None


async def read_with_groups(
    engine: AsyncEngine, tenant_id: str, resource_type: str, resource_id: str
) -> tuple[StoredResource, list[tuple[str, str]]] | None:
    """The resource and the (group id, group displayName) pairs of groups directly containing it."""
    rows = await reader(engine).fetch_batched(
        _READ_WITH_GROUPS, _key_params(tenant_id, resource_type, resource_id)
    )
    return _with_groups(resource_type, rows)


def _with_groups(
    resource_type: str, rows: Sequence[Sequence[Any]]
) -> tuple[StoredResource, list[tuple[str, str]]] | None:
    if not rows:
        return None
    groups = [(row[5], row[6] or "") for row in rows if row[5] is not None]
    return _stored(resource_type, rows[0]), groups


async def fetch_with_groups(
    conn: AsyncConnection, tenant_id: str, resource_type: str, resource_id: str
) -> tuple[StoredResource, list[tuple[str, str]]] | None:
    """`read_with_groups` inside the caller's transaction, locking the resource on PostgreSQL."""
    query = _LOCK_WITH_GROUPS if conn.dialect.name == "postgresql" else _READ_WITH_GROUPS
    rows = await execute(conn, query, _key_params(tenant_id, resource_type, resource_id))
    return _with_groups(resource_type, rows)


async def update_resource(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    current: StoredResource,
    at: str,
    doc: dict[str, Any],
    index: Iterable[IndexRow] | None,
    previous_index: Iterable[IndexRow] | None = None,
) -> StoredResource:
    """Store a new document version; `index=None` keeps the index rows as they are.

    With `previous_index` (the rows of the current document), only the rows that differ are
    deleted and inserted: a PATCH of `active` or `title` then writes no index row at all.
    """
    version = current.version + 1
    key = _key_params(tenant_id, current.resource_type, current.id)
    await execute(conn, _UPDATE, {**key, "version": version, "last_modified": at, "doc": doc})
    if index is not None and previous_index is not None:
        new, old = set(index), set(previous_index)
        gone = [{**key, "attr": attr, "value_norm": value} for attr, value, _ in old - new]
        await execute_many(conn, _DELETE_INDEX_ROW, gone)
        await _write_index(conn, tenant_id, current.resource_type, current.id, sorted(new - old))
    elif index is not None:
        await execute(conn, _DELETE_INDEX, key)
        await _write_index(conn, tenant_id, current.resource_type, current.id, index)
    return StoredResource(current.id, current.resource_type, version, current.created, at, doc)


async def touch_resource(
    conn: AsyncConnection, *, tenant_id: str, current: StoredResource, at: str
) -> StoredResource:
    """Bump version and lastModified without changing the document (e.g. membership changes)."""
    return await update_resource(
        conn, tenant_id=tenant_id, current=current, at=at, doc=current.doc, index=None
    )


class _OneStatementWrite(ResourceWrite):
    """Read without a lock; the write is one statement conditional on the version read (one
    round trip on PostgreSQL, one call in the connection's thread on SQLite: `update_at_once`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        tenant_id: str,
        current: StoredResource,
        groups: list[tuple[str, str]] | None,
    ) -> None:
        super().__init__(tenant_id, current, groups)
        self.engine = engine

    async def update(
        self,
        stored: StoredResource,
        *,
        index: Sequence[IndexRow] | None,
        previous_index: Sequence[IndexRow] | None,
        op: EventOp | None,
        actor: str | None,
        payload: dict[str, Any] | None,
    ) -> bool:
        if op is not None and index is not None and previous_index is not None and payload is not None:
            written = await update_at_once(
                self.engine,
                tenant_id=self.tenant_id,
                current=self.current,
                stored=stored,
                index=index,
                previous_index=previous_index,
                op=op,
                actor=actor,
                event_payload=payload,
            )
            if written is not None:
                return written
        # Not expressible as one statement (an index value whose uniqueness flag changed, or a
        # write without an event): the same write in a transaction, still only if nothing got in.
        async with write_transaction(self.engine) as conn:
            locked = await fetch_resource(
                conn, self.tenant_id, self.current.resource_type, self.current.id, for_update=True
            )
            if locked is None or locked.version != self.current.version:
                return False
            locked_write = _LockedWrite(conn, self.tenant_id, locked, None)
            return await locked_write.update(
                stored, index=index, previous_index=previous_index, op=op, actor=actor, payload=payload
            )


class _LockedWrite(ResourceWrite):
    """Read with the row locked inside a transaction (on SQLite the transaction holds the
    database's write lock): the write cannot lose a race."""

    def __init__(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        current: StoredResource,
        groups: list[tuple[str, str]] | None,
    ) -> None:
        super().__init__(tenant_id, current, groups)
        self._conn = conn

    @property
    def conn(self) -> AsyncConnection:
        return self._conn

    async def update(
        self,
        stored: StoredResource,
        *,
        index: Sequence[IndexRow] | None,
        previous_index: Sequence[IndexRow] | None,
        op: EventOp | None,
        actor: str | None,
        payload: dict[str, Any] | None,
    ) -> bool:
        assert stored.version == self.current.version + 1
        await update_resource(
            self._conn,
            tenant_id=self.tenant_id,
            current=self.current,
            at=stored.last_modified,
            doc=stored.doc,
            index=index,
            previous_index=previous_index,
        )
        if op is not None:
            event = _event_params(self.tenant_id, stored, op, actor, payload)
            await execute(self._conn, APPEND_EVENT, event)
        return True


@asynccontextmanager
async def resource_write(
    engine: AsyncEngine,
    tenant_id: str,
    resource_type: str,
    resource_id: str,
    *,
    locked: bool,
    with_groups: bool = False,
) -> AsyncIterator[ResourceWrite]:
    """The storage side of every PUT and PATCH: read the resource (raises NotFound), then let the
    caller `update` it. `locked`: inside a transaction holding the row (the caller may write other
    rows on `conn` too); else without a transaction, the update then being one statement that
    applies only if the version read is still the stored one. `with_groups`: the (group id,
    displayName) pairs of the groups directly containing it, in the statement that reads it."""
    if not locked:
        current, groups = await _read_for_write(engine, tenant_id, resource_type, resource_id, with_groups)
        yield _OneStatementWrite(engine, tenant_id, current, groups)
        return
    async with write_transaction(engine) as conn:
        found: tuple[StoredResource, _Groups | None] | None = None
        if with_groups:
            found = await fetch_with_groups(conn, tenant_id, resource_type, resource_id)
        else:
            stored = await fetch_resource(conn, tenant_id, resource_type, resource_id, for_update=True)
            found = None if stored is None else (stored, None)
        if found is None:
            raise NotFound(resource_type, resource_id)
        yield _LockedWrite(conn, tenant_id, found[0], found[1])


async def _read_for_write(
    engine: AsyncEngine, tenant_id: str, resource_type: str, resource_id: str, with_groups: bool
) -> tuple[StoredResource, list[tuple[str, str]] | None]:
    if with_groups:
        found = await read_with_groups(engine, tenant_id, resource_type, resource_id)
        if found is None:
            raise NotFound(resource_type, resource_id)
        return found
    stored = await read_resource(engine, tenant_id, resource_type, resource_id)
    if stored is None:
        raise NotFound(resource_type, resource_id)
    return stored, None


async def delete_resource(
    conn: AsyncConnection, tenant_id: str, resource_type: str, resource_id: str
) -> bool:
    await conn.execute(
        delete(attribute_index).where(
            attribute_index.c.tenant_id == tenant_id, attribute_index.c.resource_id == resource_id
        )
    )
    result = await conn.execute(delete(resources).where(_key(tenant_id, resource_type, resource_id)))
    return bool(result.rowcount)


async def count_resources(
    conn: AsyncConnection,
    tenant_id: str,
    resource_type: str,
    where: ColumnElement[bool] | None,
    *,
    driver: Select[Any] | None = None,
    index_rows: Select[Any] | None = None,
    several_each: bool = True,
) -> int:
    """The matching resources; `driver`: the ids to start from (`_driven`), `where` then the rest.
    With `index_rows` (ids from the attribute index, standing for the whole filter) the count is
    read from the index alone: every index row belongs to a live resource of its type (written and
    deleted with it; the API tests check each tenant for orphans), and for a prefix matching
    100,000 users this is 0.1-0.2 s where fetching each by primary key took 1.3 s."""
    if index_rows is not None:
        ids = index_rows.subquery("ids")
        # One index row per resource for a single-valued attribute: no DISTINCT (90 against 470 ms).
        counted = select(func.count(ids.c.id.distinct()) if several_each else func.count())
        return int((await conn.execute(counted.select_from(ids))).scalar_one())
    query = _count_query(tenant_id, resource_type, where, driver, conn.dialect.name)
    return int((await conn.execute(query)).scalar_one())


def _count_query(
    tenant_id: str,
    resource_type: str,
    where: ColumnElement[bool] | None,
    driver: Select[Any] | None = None,
    dialect: str = "sqlite",
) -> Select[Any]:
    query, _ = _driven(driver, tenant_id, resource_type, [where], dialect)
    return query.add_columns(func.count())


def _matching(dialect: str) -> str:
    """FROM and WHERE of the resources that have the index row (attr, value_norm), driven from that
    row. Left to choose, both planners may instead walk the tenant's resources in creation order
    and test each against the index: with statistics that say the table is small (a new database,
    and always on SQLite, which never analyzes by itself) each `userName eq` lookup then reads every
    user (77 ms at 11,700 users, measured). LATERAL on PostgreSQL (with OFFSET 0, which keeps the
    planner from pulling the subquery up into a join it may reorder) and CROSS JOIN on SQLite fix
    the join order, so a lookup costs the same at any directory size whatever the statistics say."""
    if dialect == "postgresql":
        return """
            FROM attribute_index AS ai CROSS JOIN LATERAL (
                SELECT id, version, created, last_modified, doc FROM resources
                WHERE resources.tenant_id = ai.tenant_id AND resources.id = ai.resource_id
                  AND resources.resource_type || '' = :resource_type
                OFFSET 0
            ) AS r
            WHERE ai.tenant_id = :tenant_id AND ai.resource_type = :resource_type
              AND ai.attr = :attr AND ai.value_norm = :value_norm"""
    return """
            FROM attribute_index AS ai CROSS JOIN resources AS r
            WHERE ai.tenant_id = :tenant_id AND ai.resource_type = :resource_type
              AND ai.attr = :attr AND ai.value_norm = :value_norm
              AND r.tenant_id = ai.tenant_id AND r.id = ai.resource_id AND r.resource_type = :resource_type"""


_LOOKUP_PARAMS = (
    *(bindparam(name, type_=String) for name in ("tenant_id", "resource_type", "attr", "value_norm")),
    call_column(),
)
_PAGE_PARAMS = (bindparam("offset", type_=Integer), bindparam("limit", type_=Integer))
_ROW_TYPES: dict[str, TypeEngine[Any] | type[TypeEngine[Any]]] = {
    "id": String,
    "version": Integer,
    "created": String,
    "last_modified": String,
    "doc": resources.c.doc.type,
}
#: The default order of a list (created, id), as `list_resources` builds it for any filter.
_PAGE_OF_MATCHES = """
            SELECT r.id, r.version, r.created, r.last_modified, r.doc {matching}
            ORDER BY r.created, r.id LIMIT :limit OFFSET :offset"""


def _per_dialect(build: Callable[[str], DirectStatement]) -> dict[str, DirectStatement]:
    return {dialect: build(dialect) for dialect in ("postgresql", "sqlite")}


#: `attr eq "value"` on an indexed attribute (storage/filter_sql.py `indexed_equality`): a page, in the
#: default order, and the count.
_LIST_BY_INDEXED_VALUE = _per_dialect(
    lambda d: DirectStatement(
        text(
            f"""
            SELECT r.id, r.version, r.created, r.last_modified, r.doc, :call {_matching(d)}
            ORDER BY r.created, r.id LIMIT :limit OFFSET :offset"""
        )
        .bindparams(*_LOOKUP_PARAMS, *_PAGE_PARAMS)
        .columns(**_ROW_TYPES, call=Integer)
    )
)
_COUNT_BY_INDEXED_VALUE = _per_dialect(
    lambda d: DirectStatement(
        text(f"SELECT count(*), :call {_matching(d)}")
        .bindparams(*_LOOKUP_PARAMS)
        .columns(count=Integer, call=Integer)
    )
)
#: The groups of each resource of a page. On PostgreSQL a LATERAL subquery per resource (OFFSET 0
#: keeps it one): as plain joins, statistics taken while the table was small (whose most common
#: values then stand for a large share of it) made PostgreSQL hash-join a sequential scan of
#: `group_members` for a one-user page (tests/db/test_plans.py).
_PAGE_GROUPS = {
    "postgresql": """LEFT JOIN LATERAL (
                SELECT gm.group_id, grp.doc FROM group_members AS gm
                LEFT JOIN resources AS grp ON grp.tenant_id = gm.tenant_id AND grp.id = gm.group_id
                WHERE gm.tenant_id = :tenant_id AND gm.member_id = page.id
                OFFSET 0
            ) AS gm ON true""",
    "sqlite": """LEFT JOIN group_members AS gm ON gm.tenant_id = :tenant_id AND gm.member_id = page.id
            LEFT JOIN resources AS grp ON grp.tenant_id = gm.tenant_id AND grp.id = gm.group_id""",
}
_GROUP_NAME = {"postgresql": "gm.doc ->> 'displayName'", "sqlite": "json_extract(grp.doc, '$.displayName')"}
#: The same page with the groups directly containing each of its resources (one row per group, or
#: one row with NULL group columns), in the page's order: a user lookup is then one round trip.
_LIST_BY_INDEXED_VALUE_WITH_GROUPS = _per_dialect(
    lambda d: DirectStatement(
        text(
            f"""
            SELECT page.id, page.version, page.created, page.last_modified, page.doc,
                   gm.group_id, {_GROUP_NAME[d]} AS group_name, :call
            FROM ({_PAGE_OF_MATCHES.format(matching=_matching(d))}) AS page
            {_PAGE_GROUPS[d]}
            ORDER BY page.created, page.id, group_name, gm.group_id"""
        )
        .bindparams(*_LOOKUP_PARAMS, *_PAGE_PARAMS)
        .columns(**_ROW_TYPES, group_id=String, group_name=String, call=Integer)
    )
)


async def list_by_indexed_value_with_groups(
    engine: AsyncEngine,
    tenant_id: str,
    resource_type: str,
    attr: str,
    value_norm: str,
    *,
    offset: int,
    limit: int,
) -> list[tuple[StoredResource, list[tuple[str, str]]]]:
    """`list_by_indexed_value` with each resource's (group id, group displayName) pairs."""
    params = {
        "tenant_id": tenant_id,
        "resource_type": resource_type,
        "attr": attr,
        "value_norm": value_norm,
        "offset": offset,
        "limit": limit,
    }
    out: list[tuple[StoredResource, list[tuple[str, str]]]] = []
    statement = _LIST_BY_INDEXED_VALUE_WITH_GROUPS[engine.dialect.name]
    for row in await reader(engine).fetch_batched(statement, params, by_key=offset + limit <= BY_KEY_ROWS):
        if not out or out[-1][0].id != row[0]:
            out.append((_stored(resource_type, row), []))
        if row[5] is not None:
            out[-1][1].append((row[5], row[6] or ""))
    return out


async def list_by_indexed_value(
    engine: AsyncEngine,
    tenant_id: str,
    resource_type: str,
    attr: str,
    value_norm: str,
    *,
    offset: int,
    limit: int,
) -> list[StoredResource]:
    params = {
        "tenant_id": tenant_id,
        "resource_type": resource_type,
        "attr": attr,
        "value_norm": value_norm,
        "offset": offset,
        "limit": limit,
    }
    statement = _LIST_BY_INDEXED_VALUE[engine.dialect.name]
    rows = await reader(engine).fetch_batched(statement, params, by_key=offset + limit <= BY_KEY_ROWS)
    return [_stored(resource_type, row) for row in rows]


async def count_by_indexed_value(
    engine: AsyncEngine, tenant_id: str, resource_type: str, attr: str, value_norm: str
) -> int:
    params = {"tenant_id": tenant_id, "resource_type": resource_type, "attr": attr, "value_norm": value_norm}
    rows = await reader(engine).fetch_batched(_COUNT_BY_INDEXED_VALUE[engine.dialect.name], params)
    return int(rows[0][0])


async def list_resources(
    conn: AsyncConnection,
    tenant_id: str,
    resource_type: str,
    *,
    where: ColumnElement[bool] | None,
    order_by: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
    extra_where: Sequence[ColumnElement[bool]] = (),
    driver: Select[Any] | None = None,
) -> list[StoredResource]:
    plain = where is None and not extra_where and driver is None
    keys = _index_columns(order_by) if plain else None
    if keys is not None and conn.dialect.name == "postgresql":
        deferred = _deferred_page(tenant_id, resource_type, order_by, keys, offset, limit)
        return [_stored(resource_type, row) for row in (await conn.execute(deferred)).all()]
    dialect = conn.dialect.name
    query = _list_query(
        tenant_id, resource_type, [where, *extra_where], order_by, offset, limit, driver, dialect
    )
    rows = (await conn.execute(query)).all()
    return [_stored(resource_type, row) for row in rows]


def _list_query(
    tenant_id: str,
    resource_type: str,
    where: Sequence[ColumnElement[bool] | None],
    order_by: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
    driver: Select[Any] | None = None,
    dialect: str = "sqlite",
) -> Select[Any]:
    query, adapt = _driven(driver, tenant_id, resource_type, where, dialect)
    columns, order = list(_ROW_COLUMNS), list(order_by)
    if adapt is not None:
        columns, order = [adapt.traverse(c) for c in columns], [adapt.traverse(o) for o in order]
    return query.add_columns(*columns).order_by(*order).offset(offset).limit(limit)


#: Columns of `ix_resources_type_created` / `ix_resources_type_modified` after the tenant and type.
_PAGE_KEYS = frozenset({"created", "last_modified", "id"})


def _index_columns(order_by: Sequence[ColumnElement[Any]]) -> list[Column[Any]] | None:
    """The `resources` columns the order is on, when an index holds them all (None otherwise)."""
    columns: list[Column[Any]] = []
    for element in order_by:
        while isinstance(element, UnaryExpression):
            element = element.element  # type: ignore[assignment]
        if not (isinstance(element, Column) and element.table is resources and element.name in _PAGE_KEYS):
            return None
        if element not in columns:
            columns.append(element)
    return columns


def _deferred_page(
    tenant_id: str,
    resource_type: str,
    order_by: Sequence[ColumnElement[Any]],
    keys: list[Column[Any]],
    offset: int,
    limit: int,
) -> Select[Any]:
    """An unfiltered page as a deferred join: the page's ids first, from the index alone, then their
    rows by primary key. A plain `OFFSET` fetches every skipped row from the table (PostgreSQL at
    offset 50,000 of 100,000: 21 ms with 3,769 buffers, against 7 ms and 1,038 this way). SQLite
    keeps the plain query: its pages measured no faster this way (131 against 146 req/s)."""
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
        select(*_ROW_COLUMNS)
        .where(resources.c.tenant_id == tenant_id, resources.c.id == ids.c.id)
        .offset(0)
        .lateral("r")
    )
    return (
        select(*rows.c)
        .select_from(ids.join(rows, true()))
        .order_by(*(adapt.traverse(element) for element in order_by))
    )


async def list_resources_keyed(
    conn: AsyncConnection,
    tenant_id: str,
    resource_type: str,
    *,
    where: Sequence[ColumnElement[bool]],
    key: ColumnElement[Any],
    order_by: Sequence[Any],
    limit: int,
    driver: Select[Any] | None = None,
) -> list[tuple[StoredResource, Any]]:
    """Rows with the value of their sort key, for keyset (cursor) pagination."""
    query = _keyed_query(tenant_id, resource_type, where, key, order_by, limit, driver, conn.dialect.name)
    rows = (await conn.execute(query)).all()
    return [(_stored(resource_type, row), row[5]) for row in rows]


def _keyed_query(
    tenant_id: str,
    resource_type: str,
    where: Sequence[ColumnElement[bool]],
    key: ColumnElement[Any],
    order_by: Sequence[Any],
    limit: int,
    driver: Select[Any] | None = None,
    dialect: str = "sqlite",
) -> Select[Any]:
    query, adapt = _driven(driver, tenant_id, resource_type, where, dialect)
    columns, order = [*_ROW_COLUMNS, key], list(order_by)
    if adapt is not None:
        columns, order = [adapt.traverse(c) for c in columns], [adapt.traverse(o) for o in order]
    return query.add_columns(*columns).order_by(*order).limit(limit)


#: The most index rows a `narrow_driver` range may hold. Driven from the range, a statement costs
#: one primary-key lookup per match (about 20 us each at 100,000 users, measured on a busy
#: 2-core machine: 2 s for a prefix matching every user); walking the tenant's resources in the
#: list's order finds a page of a broad prefix's matches after a few rows.
DRIVEN_MATCHES = 1_000


async def narrow_driver(conn: AsyncConnection, driver: Select[Any]) -> Select[Any] | None:
    """`driver` (ids from an index range) when it holds at most DRIVEN_MATCHES rows, else None.
    The probe reads at most that many index entries, whatever the statistics."""
    matches = int((await conn.execute(_probe_query(driver))).scalar_one())
    # Capped as the probe found it: a planner with statistics from a smaller table may otherwise
    # expect thousands of rows from the range and read them by a sequential scan.
    return driver.limit(DRIVEN_MATCHES + 1) if matches <= DRIVEN_MATCHES else None


def _probe_query(driver: Select[Any]) -> Select[Any]:
    return select(func.count()).select_from(driver.limit(DRIVEN_MATCHES + 1).subquery())


def _driven(
    driver: Select[Any] | None,
    tenant_id: str,
    resource_type: str,
    where: Sequence[ColumnElement[bool] | None],
    dialect: str,
) -> tuple[Select[Any], ClauseAdapter | None]:
    """A select of the tenant's resources of the type matching `where`, with no columns yet, and
    the adapter that maps expressions over `resources` onto it.

    With a `driver` (the ids of an index range: storage/filter_sql.py `indexed_prefix`) the statement
    starts from that range and fetches each resource by primary key. Left to choose, both planners
    may walk the tenant's resources in creation order testing each one against the range: with
    statistics from a smaller tenant, or none (a new database; SQLite always), a narrow
    `userName sw` then read every user (8-13 s at 6-8k users on PostgreSQL, measured). LATERAL
    with OFFSET 0 on PostgreSQL and CROSS JOIN on SQLite fix the join order, as for `_matching`.
    """
    conditions = [w for w in where if w is not None]
    scope = [resources.c.tenant_id == tenant_id, resources.c.resource_type == resource_type]
    if driver is None:
        return select().select_from(resources).where(*scope, *conditions), None
    hits = driver.distinct().subquery("hits")
    if dialect == "postgresql":
        rows = (
            select(*_ROW_COLUMNS)
            .where(*scope, resources.c.id == hits.c.id, *conditions)
            .offset(0)
            .lateral("r")
        )
        return select().select_from(hits.join(rows, true())), ClauseAdapter(rows)
    ordered = _OuterFirst(hits, resources, true())
    return select().select_from(ordered).where(*scope, resources.c.id == hits.c.id, *conditions), None


class _OuterFirst(Join):
    """`left CROSS JOIN right` on SQLite: an inner join whose left side stays the outer loop."""

    inherit_cache = True


@compiles(_OuterFirst, "sqlite")
def _cross_join(join: _OuterFirst, compiler: Any, **kw: Any) -> str:
    kw["asfrom"] = True
    left, right = compiler.process(join.left, **kw), compiler.process(join.right, **kw)
    return f"{left} CROSS JOIN {right}"
