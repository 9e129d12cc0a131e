"""PostgreSQL's member statements (`storage.members_sql.MemberStatements`): ids travel as arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, bindparam, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.events.model import EventOp
from provisor.storage.members_sql import MemberChange, existing_members, removed_members
from provisor.storage.outbox_sql import events_insert, op_literal
from provisor.storage.postgres.driver import reader
from provisor.storage.statements import DirectStatement
from provisor.storage.tables import group_members, resources


def _any_of(column: ColumnElement[str]) -> ColumnElement[bool]:
    """`column` is one of the `ids` array parameter."""
    return column == func.any(bindparam("ids", type_=postgresql.ARRAY(String)))


types_of = DirectStatement(
    select(resources.c.id, resources.c.resource_type).where(
        resources.c.tenant_id == bindparam("tenant_id"), _any_of(resources.c.id)
    )
)
existing = existing_members(_any_of(group_members.c.member_id))
remove = removed_members(_any_of(group_members.c.member_id))
#: Insert members unless present, returning the ids that went in: one statement instead of a
#: lookup of the present ones and an insert. The rows travel as three arrays.
add_new = DirectStatement(
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
)


def add_new_params(
    tenant_id: str, group_id: str, members: Sequence[tuple[str, str, str | None]]
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "group_id": group_id,
        "ids": [m for m, _, _ in members],
        "types": [t for _, t, _ in members],
        "displays": [d for _, _, d in members],
    }


#: Each member's groups by ix_group_members_member, one LATERAL subquery per id (OFFSET 0 keeps it
#: one). With `member_id = ANY(:ids)`, statistics taken while the table was small (whose most
#: common values then stand for a large share of it) had PostgreSQL expect 14,000 of 21,500 rows
#: for a page of 100 users and read all of `group_members` (tests/db/test_plans.py).
direct_groups = DirectStatement(
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


#: A group's member additions and removals, its version bump and its member events as one
#: statement. The group row is locked first (`grp`); nothing is written unless every id to add
#: exists (or unknown ids are ignored), the group is not among them and the tenant maps no group
#: to a role (`ok`); the events come last.
_CHANGE_MEMBERS = DirectStatement(
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
              AND NOT EXISTS (SELECT 1 FROM role_mappings WHERE tenant_id = :tenant_id)
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


async def change_at_once(
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
    """One statement (`_CHANGE_MEMBERS`), one round trip."""
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
    [row] = await reader(engine).fetch(_CHANGE_MEMBERS, params)
    known = dict(row[1] or [])
    return MemberChange(known, list(row[2] or []), list(row[3] or []), row[4], bool(row[0]))
