"""Group membership rows. Every statement touches only the rows it names: O(k) for k members."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    String,
    and_,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.events.model import EventOp, event_row
from provisor.storage.direct import BY_KEY_ROWS, DirectStatement, execute, reader, write_in_sqlite_thread
from provisor.storage.outbox import APPEND_EVENT, events_insert, op_literal
from provisor.storage.tables import group_members, resources

T = TypeVar("T")

#: Bound-parameter batches stay below SQLite's and asyncpg's parameter limits.
CHUNK = 500


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _any_of(column: ColumnElement[str]) -> dict[str, ColumnElement[bool]]:
    """`column` is one of the `ids` parameter, per dialect: one array (PostgreSQL) or one JSON text
    (SQLite), so a statement's SQL is the same whatever the number of ids."""
    return {
        "postgresql": column == func.any(bindparam("ids", type_=postgresql.ARRAY(String))),
        "sqlite": column.in_(
            select(literal_column("value")).select_from(func.json_each(bindparam("ids", type_=JSON)))
        ),
    }


def _per_dialect(
    build: Callable[[ColumnElement[bool]], Any], column: ColumnElement[str]
) -> dict[str, DirectStatement]:
    return {dialect: DirectStatement(build(condition)) for dialect, condition in _any_of(column).items()}


_IN_GROUP = and_(
    group_members.c.tenant_id == bindparam("tenant_id"), group_members.c.group_id == bindparam("group_id")
)
#: The member operations' statements, built once and run on the driver connection (storage/direct.py).
_TYPES_OF = _per_dialect(
    lambda ids: select(resources.c.id, resources.c.resource_type).where(
        resources.c.tenant_id == bindparam("tenant_id"), ids
    ),
    resources.c.id,
)
# SQLite's planner would scan the tenant's resources for `id IN (json_each)` (it prefers a covering
# index on tenant_id alone); CROSS JOIN makes it drive from the ids, one primary-key probe each.
_TYPES_OF["sqlite"] = DirectStatement(
    text(
        "SELECT resources.id, resources.resource_type FROM json_each(:ids) AS ids "
        "CROSS JOIN resources WHERE resources.tenant_id = :tenant_id AND resources.id = ids.value"
    )
    .bindparams(bindparam("ids", type_=JSON), bindparam("tenant_id", type_=String))
    .columns(resources.c.id, resources.c.resource_type)
)
_EXISTING = _per_dialect(
    lambda ids: select(group_members.c.member_id).where(_IN_GROUP, ids), group_members.c.member_id
)
_REMOVE = _per_dialect(
    lambda ids: delete(group_members).where(_IN_GROUP, ids).returning(group_members.c.member_id),
    group_members.c.member_id,
)


async def resource_types_of(conn: AsyncConnection, tenant_id: str, ids: Sequence[str]) -> dict[str, str]:
    """Map each existing id among `ids` to its resource type (missing ids are absent)."""
    if not ids:
        return {}
    rows = await execute(conn, _TYPES_OF[conn.dialect.name], {"tenant_id": tenant_id, "ids": list(ids)})
    return {row[0]: row[1] for row in rows}


async def member_ids(conn: AsyncConnection, tenant_id: str, group_id: str) -> set[str]:
    """Every member id of one group: for a PUT, which replaces the whole list."""
    rows = await conn.execute(
        select(group_members.c.member_id).where(
            group_members.c.tenant_id == tenant_id, group_members.c.group_id == group_id
        )
    )
    return {row[0] for row in rows}


async def run_with_member_loader(
    conn: AsyncConnection,
    tenant_id: str,
    group_id: str,
    work: Callable[[Callable[[], list[dict[str, Any]]]], T],
) -> T:
    """Run the synchronous `work` in the connection's context, handing it a loader of the
    group's members as `{"value", "type"}` dicts.

    The PATCH engine is synchronous and needs the member list only for operations that filter
    or replace members; the loader reads it when called, so a PATCH that never asks costs no read
    of a large group.
    """

    def run(sync_conn: Connection) -> T:
        def load() -> list[dict[str, Any]]:
            rows = sync_conn.execute(
                select(group_members.c.member_id, group_members.c.member_type).where(
                    group_members.c.tenant_id == tenant_id, group_members.c.group_id == group_id
                )
            )
            return [{"value": r[0], "type": r[1]} for r in rows]

        return work(load)

    return await conn.run_sync(run)


async def existing_member_ids(
    conn: AsyncConnection, tenant_id: str, group_id: str, ids: Sequence[str]
) -> set[str]:
    if not ids:
        return set()
    params = {"tenant_id": tenant_id, "group_id": group_id, "ids": list(ids)}
    return {row[0] for row in await execute(conn, _EXISTING[conn.dialect.name], params)}


#: Insert members unless present, returning the ids that went in: one statement instead of a
#: lookup of the present ones and an insert. The rows travel as arrays (PostgreSQL) or as one JSON
#: array of [id, type, display] (SQLite).
_ADD_NEW = {
    "postgresql": DirectStatement(
        text(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_type, display) "
            "SELECT :tenant_id, :group_id, x.id, x.type, x.display "
            "FROM unnest(:ids, :types, :displays) AS x(id, type, display) "
            "ON CONFLICT DO NOTHING RETURNING member_id"
        ).bindparams(
            bindparam("tenant_id", type_=String),
            bindparam("group_id", type_=String),
            bindparam("ids", type_=postgresql.ARRAY(String)),
            bindparam("types", type_=postgresql.ARRAY(String)),
            bindparam("displays", type_=postgresql.ARRAY(String)),
        )
    ),
    "sqlite": DirectStatement(
        text(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_type, display) "
            "SELECT :tenant_id, :group_id, json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
            "json_extract(value, '$[2]') FROM json_each(:rows) WHERE true "
            "ON CONFLICT DO NOTHING RETURNING member_id"
        ).bindparams(
            bindparam("tenant_id", type_=String),
            bindparam("group_id", type_=String),
            bindparam("rows", type_=JSON),
        )
    ),
}


async def add_new_members(
    conn: AsyncConnection, tenant_id: str, group_id: str, members: Sequence[tuple[str, str, str | None]]
) -> set[str]:
    """Insert the (member_id, member_type, display) rows that are not members yet; their ids."""
    if not members:
        return set()
    params: dict[str, Any] = {"tenant_id": tenant_id, "group_id": group_id}
    if conn.dialect.name == "sqlite":
        params["rows"] = [list(m) for m in members]
    else:
        params.update(
            ids=[m for m, _, _ in members],
            types=[t for _, t, _ in members],
            displays=[d for _, _, d in members],
        )
    return {row[0] for row in await execute(conn, _ADD_NEW[conn.dialect.name], params)}


async def remove_members(conn: AsyncConnection, tenant_id: str, group_id: str, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    params = {"tenant_id": tenant_id, "group_id": group_id, "ids": list(ids)}
    return len(await execute(conn, _REMOVE[conn.dialect.name], params))


async def remove_all_members(conn: AsyncConnection, tenant_id: str, group_id: str) -> list[str]:
    return [
        row[0]
        for row in await conn.execute(
            delete(group_members)
            .where(group_members.c.tenant_id == tenant_id, group_members.c.group_id == group_id)
            .returning(group_members.c.member_id)
        )
    ]


async def groups_containing(conn: AsyncConnection, tenant_id: str, member_id: str) -> list[str]:
    rows = await conn.execute(
        select(group_members.c.group_id).where(
            group_members.c.tenant_id == tenant_id, group_members.c.member_id == member_id
        )
    )
    return [row[0] for row in rows]


#: A member's display name: the group's or user's displayName, else its userName. Built once.
_DISPLAY = func.coalesce(
    resources.c.doc["displayName"].as_string(), resources.c.doc["userName"].as_string(), literal("")
)


def _members_query(tenant_id: str, group_ids: Sequence[str]) -> Any:
    return (
        select(
            group_members.c.group_id,
            group_members.c.member_id,
            group_members.c.member_type,
            func.coalesce(group_members.c.display, _DISPLAY),
        )
        .join(
            resources,
            and_(
                resources.c.tenant_id == group_members.c.tenant_id,
                resources.c.id == group_members.c.member_id,
            ),
        )
        .where(group_members.c.tenant_id == tenant_id, group_members.c.group_id.in_(list(group_ids)))
        .order_by(group_members.c.group_id, group_members.c.member_id)
    )


async def iter_members(
    conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str], *, batch: int = 5000
) -> AsyncIterator[tuple[str, str, str, str]]:
    """Stream (group_id, member_id, member_type, display) in member order, from a server-side
    cursor (PostgreSQL needs the caller to hold a transaction for that)."""
    result = await conn.stream(_members_query(tenant_id, group_ids).execution_options(yield_per=batch))
    async for row in result:
        yield row[0], row[1], row[2], row[3]


async def list_members(
    conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
) -> list[tuple[str, str, str, str]]:
    """Like `iter_members`, materialised: for pages of groups, which are rendered whole anyway."""
    rows = await conn.execute(_members_query(tenant_id, group_ids))
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def direct_groups(
    conn: AsyncConnection, tenant_id: str, member_ids: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(member_id, group_id, group display) for groups that directly contain the given members."""
    query = (
        select(group_members.c.member_id, group_members.c.group_id, _DISPLAY)
        .join(
            resources,
            and_(
                resources.c.tenant_id == group_members.c.tenant_id, resources.c.id == group_members.c.group_id
            ),
        )
        .where(group_members.c.tenant_id == tenant_id, group_members.c.member_id.in_(list(member_ids)))
        .order_by(group_members.c.member_id, _DISPLAY, group_members.c.group_id)
    )
    return [(r[0], r[1], r[2]) for r in await conn.execute(query)]


def _direct_groups_statement(ids: ColumnElement[bool]) -> Any:
    return (
        select(group_members.c.member_id, group_members.c.group_id, _DISPLAY)
        .join(
            resources,
            and_(
                resources.c.tenant_id == group_members.c.tenant_id, resources.c.id == group_members.c.group_id
            ),
        )
        .where(group_members.c.tenant_id == bindparam("tenant_id"), ids)
        .order_by(group_members.c.member_id, _DISPLAY, group_members.c.group_id)
    )


#: `direct_groups` as one prebuilt statement per dialect: the ids travel as one array (PostgreSQL)
#: or one JSON text (SQLite), so the SQL is the same whatever their number.
_DIRECT_GROUPS = _per_dialect(_direct_groups_statement, group_members.c.member_id)
#: PostgreSQL: each member's groups by ix_group_members_member, one LATERAL subquery per id (OFFSET 0
#: keeps it one). With `member_id = ANY(:ids)`, statistics taken while the table was small (whose
#: most common values then stand for a large share of it) had PostgreSQL expect 14,000 of 21,500
#: rows for a page of 100 users and read all of `group_members` (tests/db/test_plans.py).
_DIRECT_GROUPS["postgresql"] = DirectStatement(
    text(
        """
        SELECT m.id AS member_id, g.group_id, g.display
        FROM (SELECT DISTINCT unnest(:ids) AS id) AS m CROSS JOIN LATERAL (
            SELECT gm.group_id,
                   coalesce(grp.doc ->> 'displayName', grp.doc ->> 'userName', '') AS display
            FROM group_members AS gm
            JOIN resources AS grp ON grp.tenant_id = gm.tenant_id AND grp.id = gm.group_id
            WHERE gm.tenant_id = :tenant_id AND gm.member_id = m.id
            OFFSET 0
        ) AS g
        ORDER BY m.id, g.display, g.group_id
        """
    )
    .bindparams(bindparam("ids", type_=postgresql.ARRAY(String)), bindparam("tenant_id", type_=String))
    .columns(member_id=String, group_id=String, display=String)
)


async def read_direct_groups(
    engine: AsyncEngine, tenant_id: str, member_ids: Sequence[str]
) -> list[tuple[str, str, str]]:
    """`direct_groups` outside any transaction, on the driver connection (storage/direct.py)."""
    statement = _DIRECT_GROUPS[engine.dialect.name]
    params = {"tenant_id": tenant_id, "ids": list(member_ids)}
    rows = await reader(engine).fetch(statement, params, by_key=len(member_ids) <= BY_KEY_ROWS)
    return [(r[0], r[1], r[2]) for r in rows]


async def parent_groups(
    conn: AsyncConnection, tenant_id: str, group_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Group ids that directly contain each of `group_ids` (for nested-group expansion)."""
    out: dict[str, list[str]] = {}
    for chunk in _chunks(list(group_ids)):
        rows = await conn.execute(
            select(group_members.c.member_id, group_members.c.group_id).where(
                group_members.c.tenant_id == tenant_id, group_members.c.member_id.in_(chunk)
            )
        )
        for member, group in rows:
            out.setdefault(member, []).append(group)
    return out


async def display_names(conn: AsyncConnection, tenant_id: str, ids: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in _chunks(list(ids)):
        rows = await conn.execute(
            select(resources.c.id, _DISPLAY).where(
                resources.c.tenant_id == tenant_id, resources.c.id.in_(chunk)
            )
        )
        out.update({r[0]: r[1] for r in rows})
    return out


@dataclass(frozen=True)
class MemberChange:
    """What `change_members_at_once` found and did."""

    known: dict[str, str]  # requested add ids that exist -> their resource type
    added: list[str]  # in request order
    removed: list[str]  # sorted
    version: int | None  # the group's new version, None when nothing changed (or no group)
    applied: bool  # False: refused (unknown member or the group itself), nothing was written


#: PostgreSQL: a group's member additions and removals, its version bump and its member events as
#: one statement. The group row is locked first (`grp`); nothing is written unless every id to add
#: exists (or unknown ids are ignored) and the group is not among them (`ok`); the events come last.
_CHANGE_MEMBERS_PG = DirectStatement(
    text(
        """
        WITH grp AS (
            SELECT id FROM resources
            WHERE tenant_id = :tenant_id AND id = :group_id AND resource_type = 'Group' FOR UPDATE
        ), wanted AS (
            SELECT x.id, x.display, x.ord
            FROM unnest(:add_ids, :add_displays) WITH ORDINALITY AS x(id, display, ord)
        ), known AS (
            SELECT r.id, r.resource_type FROM resources AS r, grp
            WHERE r.tenant_id = :tenant_id AND r.id = ANY(:add_ids)
        ), ok AS (
            SELECT 1 AS ok FROM grp
            WHERE (:ignore_unknown OR (SELECT count(*) FROM known) = cardinality(:add_ids))
              AND NOT EXISTS (SELECT 1 FROM known WHERE known.id = :group_id)
        ), added AS (
            INSERT INTO group_members (tenant_id, group_id, member_id, member_type, display)
            SELECT :tenant_id, :group_id, k.id, k.resource_type, w.display
            FROM ok, known AS k JOIN wanted AS w ON w.id = k.id
            ON CONFLICT DO NOTHING RETURNING member_id
        ), removed AS (
            DELETE FROM group_members AS gm USING ok
            WHERE gm.tenant_id = :tenant_id AND gm.group_id = :group_id AND gm.member_id = ANY(:remove_ids)
            RETURNING gm.member_id
        ), added_ids AS (
            SELECT jsonb_agg(a.member_id ORDER BY w.ord) AS ids
            FROM added AS a JOIN wanted AS w ON w.id = a.member_id
        ), removed_ids AS (
            SELECT jsonb_agg(member_id ORDER BY member_id) AS ids FROM removed
        ), bumped AS (
            UPDATE resources AS r SET version = r.version + 1, last_modified = :at
            FROM added_ids, removed_ids
            WHERE r.tenant_id = :tenant_id AND r.id = :group_id AND r.resource_type = 'Group'
              AND (added_ids.ids IS NOT NULL OR removed_ids.ids IS NOT NULL)
            RETURNING r.version
        ), added_event AS (
        """
        + events_insert(
            "added_ids WHERE ids IS NOT NULL",
            "seq",
            resource_type="'Group'",
            resource_id=":group_id",
            op=op_literal(EventOp.MEMBER_ADDED),
            version="NULL",
            payload="jsonb_build_object('members', ids)",
        )
        + """
        ), removed_event AS (
        """
        + events_insert(
            "removed_ids, (SELECT count(*) FROM added_event) AS after_added"
            " WHERE removed_ids.ids IS NOT NULL",
            "seq",
            resource_type="'Group'",
            resource_id=":group_id",
            op=op_literal(EventOp.MEMBER_REMOVED),
            version="NULL",
            payload="jsonb_build_object('members', removed_ids.ids)",
        )
        + """
        )
        SELECT (SELECT count(*) FROM ok),
               (SELECT jsonb_agg(jsonb_build_array(id, resource_type)) FROM known),
               (SELECT ids FROM added_ids),
               (SELECT ids FROM removed_ids),
               (SELECT version FROM bumped),
               (SELECT count(*) FROM removed_event)
        """
    ).bindparams(
        *(bindparam(n, type_=String) for n in ("tenant_id", "group_id", "at", "actor")),
        bindparam("ignore_unknown", type_=Boolean),
        bindparam("add_ids", type_=postgresql.ARRAY(String)),
        bindparam("add_displays", type_=postgresql.ARRAY(String)),
        bindparam("remove_ids", type_=postgresql.ARRAY(String)),
    )
)


async def change_members_at_once(
    engine: AsyncEngine,
    *,
    tenant_id: str,
    group_id: str,
    add: dict[str, str | None],
    remove_ids: Sequence[str],
    ignore_unknown: bool,
    at: str,
    actor: str | None,
) -> MemberChange:
    """Add members (id -> display as sent) and remove members of one group, bump its version and
    record `member_added` / `member_removed`, atomically and without a transaction's round trips:
    one statement on PostgreSQL, one call in the connection's thread on SQLite. Nothing is written
    when an id to add does not exist (unless `ignore_unknown`) or is the group itself."""
    if engine.dialect.name == "postgresql":
        params = {
            "tenant_id": tenant_id,
            "group_id": group_id,
            "at": at,
            "actor": actor,
            "ignore_unknown": ignore_unknown,
            "add_ids": list(add),
            "add_displays": list(add.values()),
            "remove_ids": list(remove_ids),
        }
        [row] = await reader(engine).fetch(_CHANGE_MEMBERS_PG, params)
        known = dict(row[1] or [])
        return MemberChange(known, list(row[2] or []), list(row[3] or []), row[4], bool(row[0]))
    dialect = engine.dialect
    types_of, insert, remove = (st[dialect.name].compiled(dialect) for st in (_TYPES_OF, _ADD_NEW, _REMOVE))
    event = APPEND_EVENT.compiled(dialect)
    group = {"tenant_id": tenant_id, "group_id": group_id}

    def steps(db: sqlite3.Connection) -> MemberChange:
        if db.execute(_SQLITE_GROUP_EXISTS, (tenant_id, group_id)).fetchone() is None:
            return MemberChange({}, [], [], None, False)
        known: dict[str, str] = {}
        if add:
            rows = db.execute(types_of.sql, types_of.args({"tenant_id": tenant_id, "ids": list(add)}))
            known = {row[0]: row[1] for row in rows}
        if (len(known) < len(add) and not ignore_unknown) or group_id in known:
            return MemberChange(known, [], [], None, False)
        rows_in = [[i, known[i], d] for i, d in add.items() if i in known]
        inserted: set[str] = set()
        if rows_in:
            inserted = {r[0] for r in db.execute(insert.sql, insert.args({**group, "rows": rows_in}))}
        added = [i for i in add if i in inserted]
        removed: list[str] = []
        if remove_ids:
            removed = sorted(
                r[0] for r in db.execute(remove.sql, remove.args({**group, "ids": list(remove_ids)}))
            )
        if not added and not removed:
            return MemberChange(known, [], [], None, True)
        version = db.execute(_SQLITE_BUMP, (at, tenant_id, group_id)).fetchone()[0]
        for op, ids in ((EventOp.MEMBER_ADDED, added), (EventOp.MEMBER_REMOVED, removed)):
            if ids:
                values = event_row(
                    tenant_id=tenant_id,
                    at=at,
                    resource_type="Group",
                    resource_id=group_id,
                    op=op,
                    version=None,
                    actor=actor,
                    payload={"members": ids},
                )
                db.execute(event.sql, event.args(values))
        return MemberChange(known, added, removed, version, True)

    return await write_in_sqlite_thread(engine, steps)


_SQLITE_GROUP_EXISTS = "SELECT 1 FROM resources WHERE tenant_id = ? AND id = ? AND resource_type = 'Group'"
_SQLITE_BUMP = (
    "UPDATE resources SET version = version + 1, last_modified = ? "
    "WHERE tenant_id = ? AND id = ? AND resource_type = 'Group' RETURNING version"
)


async def members_page(
    conn: AsyncConnection, tenant_id: str, group_id: str, *, after: str | None, limit: int
) -> list[tuple[str, str, str, str]]:
    """One page of a group's members in member-id order after `after` (the console pages through
    groups of any size this way)."""
    query = _members_query(tenant_id, [group_id])
    if after:
        query = query.where(group_members.c.member_id > after)
    rows = await conn.execute(query.limit(limit))
    return [(row[0], row[1], row[2], row[3]) for row in rows]
