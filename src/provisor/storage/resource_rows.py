"""A resource as stored, and the statements on its rows that both databases run the same way.

The building blocks of storage/resources.py and of its per-database parts
(storage/postgres/resources.py, storage/sqlite/resources.py): the row, the index rows, the
statements by primary key, and the base of a read-apply-write. Nothing here picks a database, so
the per-database modules import it freely (storage/kind.py imports them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.type_api import TypeEngine

from provisor.events.model import EventOp, event_row
from provisor.storage.errors import unique_violations
from provisor.storage.statements import DirectStatement, call_column
from provisor.storage.tables import attribute_index, group_members, resources

IndexRow = tuple[str, str, bool]

#: (group id, group displayName) of the groups directly containing a resource.
Groups = list[tuple[str, str]]

ROW_COLUMNS = (
    resources.c.id,
    resources.c.version,
    resources.c.created,
    resources.c.last_modified,
    resources.c.doc,
)


@dataclass(frozen=True)
class StoredResource:
    id: str
    resource_type: str
    version: int
    created: str
    last_modified: str
    doc: dict[str, Any]


_new = object.__new__


def stored_row(resource_type: str, row: Sequence[Any]) -> StoredResource:
    """A `ROW_COLUMNS` row as a StoredResource.

    Made without the frozen dataclass's `__init__`, which sets each field through
    `object.__setattr__`: 0.5 µs instead of 1.6 µs on every row read (the instance is the same,
    equal to one made by `__init__`, and as frozen; tests/db/test_direct.py compares them)."""
    stored: StoredResource = _new(StoredResource)
    stored.__dict__.update(
        id=row[0],
        resource_type=resource_type,
        version=row[1],
        created=row[2],
        last_modified=row[3],
        doc=row[4],
    )
    return stored


def type_is(value: Any) -> ColumnElement[bool]:
    """`resources.resource_type = value` for statements by primary key, as an expression no index
    serves. A plain comparison also matched the leading columns of ix_resources_type_created and
    _modified (tenant_id, resource_type): PostgreSQL without statistics (a new database before
    autovacuum's first ANALYZE) costed those the same as the primary key and took one, reading
    the tenant's index entries to find one id, so GET by id and PATCH cost in proportion to the
    tenant (tests/db/test_plans.py). The SQL statements spell it `resource_type || ''`."""
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
INSERT = DirectStatement(
    insert(resources).values(
        _params(resources, "tenant_id", "id", "resource_type", "version", "created", "last_modified", "doc")
    )
)
#: The primary key and type of one resource, as parameters. Built once: constructing statements
#: per request costs more Python time than executing them.
BY_KEY = and_(
    resources.c.tenant_id == bindparam("tenant_id"),
    resources.c.id == bindparam("resource_id"),
    type_is(bindparam("resource_type")),
)
UPDATE = DirectStatement(
    update(resources).where(BY_KEY).values(_params(resources, "version", "last_modified", "doc"))
)
UPDATE_IF_VERSION = DirectStatement(
    update(resources)
    .where(BY_KEY, resources.c.version == bindparam("expected"))
    .values(_params(resources, "version", "last_modified", "doc"))
)
DELETE_INDEX = DirectStatement(
    delete(attribute_index).where(
        attribute_index.c.tenant_id == bindparam("tenant_id"),
        attribute_index.c.resource_id == bindparam("resource_id"),
    )
)
DELETE_INDEX_ROW = DirectStatement(
    delete(attribute_index).where(
        attribute_index.c.tenant_id == bindparam("tenant_id"),
        attribute_index.c.resource_id == bindparam("resource_id"),
        attribute_index.c.attr == bindparam("attr"),
        attribute_index.c.value_norm == bindparam("value_norm"),
    )
)

_FETCH = select(*ROW_COLUMNS, call_column()).where(BY_KEY)
#: One resource by key.
READ = DirectStatement(_FETCH, by_key=True)
#: The same, locking its row until the end of the transaction (PostgreSQL).
LOCK = DirectStatement(_FETCH.with_for_update())

_GROUP = resources.alias("grp")
#: A user with the groups that directly contain it, in one statement (one row per group, or one
#: row with NULL group columns): a GET by id is then a single round trip.
_WITH_GROUPS = (
    select(*ROW_COLUMNS, group_members.c.group_id, _GROUP.c.doc["displayName"].as_string(), call_column())
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
    .where(BY_KEY)
    .order_by(_GROUP.c.doc["displayName"].as_string(), group_members.c.group_id)
)
READ_WITH_GROUPS = DirectStatement(_WITH_GROUPS, by_key=True)
#: The same, locking the resource row (PostgreSQL): a PATCH of a user reads its groups for the
#: answer in the statement that locks it.
LOCK_WITH_GROUPS = DirectStatement(_WITH_GROUPS.with_for_update(of=resources))

#: The parameters and columns of the lookups by one index row (`attr eq "value"`).
LOOKUP_PARAMS = (
    *(bindparam(name, type_=String) for name in ("tenant_id", "resource_type", "attr", "value_norm")),
    call_column(),
)
#: 64-bit: a startIndex may be far past a tenant's rows (protocol/query.py `MAX_START_INDEX`).
PAGE_PARAMS = (bindparam("offset", type_=BigInteger), bindparam("limit", type_=Integer))
ROW_TYPES: dict[str, TypeEngine[Any] | type[TypeEngine[Any]]] = {
    "id": String,
    "version": Integer,
    "created": String,
    "last_modified": String,
    "doc": resources.c.doc.type,
}
#: The default order of a list (created, id), as storage/resources.py `list_resources` builds it
#: for any filter; `matching` is FROM and WHERE of the resources matched.
PAGE_OF_MATCHES = """
            SELECT r.id, r.version, r.created, r.last_modified, r.doc {matching}
            ORDER BY r.created, r.id LIMIT :limit OFFSET :offset"""


def page_by_indexed_value(matching: str) -> DirectStatement:
    """The page of `list_by_indexed_value` (storage/resources.py) over one database's `matching`:
    FROM and WHERE of the resources that have the index row, which is all that differs."""
    return DirectStatement(
        text(
            f"""
            SELECT r.id, r.version, r.created, r.last_modified, r.doc, :call {matching}
            ORDER BY r.created, r.id LIMIT :limit OFFSET :offset"""
        )
        .bindparams(*LOOKUP_PARAMS, *PAGE_PARAMS)
        .columns(**ROW_TYPES, call=Integer)
    )


def count_by_indexed_value(matching: str) -> DirectStatement:
    """The count of `count_by_indexed_value` (storage/resources.py) over one database's `matching`."""
    return DirectStatement(
        text(f"SELECT count(*), :call {matching}")
        .bindparams(*LOOKUP_PARAMS)
        .columns(count=Integer, call=Integer)
    )


def conflicts_as_uniqueness(resource_type: str, rows: Iterable[IndexRow]) -> AbstractContextManager[None]:
    """A unique-index violation while writing `rows` raises UniqueViolation naming their unique
    attributes."""
    return unique_violations(resource_type, unique_attributes(rows))


def unique_attributes(rows: Iterable[IndexRow]) -> list[str]:
    return [attr for attr, _, unique in rows if unique]


def index_params(tenant_id: str, resource_type: str, resource_id: str, row: IndexRow) -> dict[str, Any]:
    attr, value, unique = row
    return {
        "tenant_id": tenant_id,
        "resource_type": resource_type,
        "attr": attr,
        "value_norm": value,
        "resource_id": resource_id,
        "is_unique": unique,
    }


def key_params(tenant_id: str, resource_type: str, resource_id: str) -> dict[str, str]:
    return {"tenant_id": tenant_id, "resource_id": resource_id, "resource_type": resource_type}


def event_params(
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


def stored_with_groups(
    resource_type: str, rows: Sequence[Sequence[Any]]
) -> tuple[StoredResource, Groups] | None:
    """The resource and its groups from the rows of `READ_WITH_GROUPS` (or its locking form)."""
    if not rows:
        return None
    groups = [(row[5], row[6] or "") for row in rows if row[5] is not None]
    return stored_row(resource_type, rows[0]), groups


class ResourceWrite:
    """One read-apply-write of a resource (storage/resources.py `resource_write`): the resource as
    read (`current`, with its direct groups when asked for) and `update`, which stores its next
    version."""

    def __init__(self, tenant_id: str, current: StoredResource, groups: Groups | None) -> None:
        self.tenant_id = tenant_id
        self.current = current
        self.groups = groups

    @property
    def conn(self) -> AsyncConnection | None:
        """The transaction holding the resource's row lock, for writes beside the row (a group's
        members); None when the resource was read without one."""
        return None

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
        """Store `stored` (the version after `current`), replace the index rows that differ
        between `previous_index` and `index` (None: keep them), and append the `op` event (None:
        none), atomically. False when the stored version is no longer `current` (another write
        got in first; only without the lock): nothing was written. Raises UniqueViolation."""
        raise NotImplementedError
