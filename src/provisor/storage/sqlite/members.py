"""SQLite's member statements (`storage.members_sql.MemberStatements`): ids travel as one JSON
text, read back by `json_each`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    String,
    and_,
    bindparam,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.events.model import EventOp, event_row
from provisor.storage.members_sql import DISPLAY, MemberChange, existing_members, removed_members
from provisor.storage.outbox_sql import APPEND_EVENT
from provisor.storage.sqlite.driver import write_in_sqlite_thread
from provisor.storage.statements import DirectStatement
from provisor.storage.tables import group_members, resources


def _any_of(column: ColumnElement[str]) -> ColumnElement[bool]:
    """`column` is one of the `ids` parameter, a JSON array."""
    return column.in_(
        select(literal_column("value")).select_from(func.json_each(bindparam("ids", type_=JSON)))
    )


# The planner would scan the tenant's resources for `id IN (json_each)` (it prefers a covering
# index on tenant_id alone); CROSS JOIN makes it drive from the ids, one primary-key probe each.
types_of = DirectStatement(
    text(
        "SELECT resources.id, resources.resource_type FROM json_each(:ids) AS ids "
        "CROSS JOIN resources WHERE resources.tenant_id = :tenant_id AND resources.id = ids.value"
    )
    .bindparams(bindparam("ids", type_=JSON), bindparam("tenant_id", type_=String))
    .columns(resources.c.id, resources.c.resource_type)
)
existing = existing_members(_any_of(group_members.c.member_id))
remove = removed_members(_any_of(group_members.c.member_id))
#: Insert members unless present, returning the ids that went in: one statement instead of a
#: lookup of the present ones and an insert. The rows travel as one JSON array of [id, type, display].
add_new = DirectStatement(
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
)


def add_new_params(
    tenant_id: str, group_id: str, members: Sequence[tuple[str, str, str | None]]
) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "group_id": group_id, "rows": [list(m) for m in members]}


direct_groups = DirectStatement(
    select(group_members.c.member_id, group_members.c.group_id, DISPLAY)
    .join(
        resources,
        and_(resources.c.tenant_id == group_members.c.tenant_id, resources.c.id == group_members.c.group_id),
    )
    .where(group_members.c.tenant_id == bindparam("tenant_id"), _any_of(group_members.c.member_id))
    .order_by(group_members.c.member_id, DISPLAY, group_members.c.group_id)
)

_GROUP_EXISTS = "SELECT 1 FROM resources WHERE tenant_id = ? AND id = ? AND resource_type = 'Group'"
_MAPPED = "SELECT 1 FROM role_mappings WHERE tenant_id = ? LIMIT 1"
_BUMP = (
    "UPDATE resources SET version = version + 1, last_modified = ? "
    "WHERE tenant_id = ? AND id = ? AND resource_type = 'Group' RETURNING version"
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
    """One call in the connection's thread, under the writer lock (`write_in_sqlite_thread`)."""
    dialect = engine.dialect
    types_of_, insert, remove_ = (st.compiled(dialect) for st in (types_of, add_new, remove))
    event = APPEND_EVENT.compiled(dialect)
    group = {"tenant_id": tenant_id, "group_id": group_id}

    def steps(db: sqlite3.Connection) -> MemberChange:
        if db.execute(_GROUP_EXISTS, (tenant_id, group_id)).fetchone() is None:
            return MemberChange({}, [], [], None, False)
        known: dict[str, str] = {}
        if add:
            rows = db.execute(types_of_.sql, types_of_.args({"tenant_id": tenant_id, "ids": list(add)}))
            known = {row[0]: row[1] for row in rows}
        if (len(known) < len(add) and not ignore_unknown) or group_id in known:
            return MemberChange(known, [], [], None, False)
        if db.execute(_MAPPED, (tenant_id,)).fetchone() is not None:
            return MemberChange(known, [], [], None, False)
        rows_in = [[i, known[i], d] for i, d in add.items() if i in known]
        inserted: set[str] = set()
        if rows_in:
            inserted = {r[0] for r in db.execute(insert.sql, insert.args({**group, "rows": rows_in}))}
        added = [i for i in add if i in inserted]
        removed: list[str] = []
        if remove_ids:
            removed = sorted(
                r[0] for r in db.execute(remove_.sql, remove_.args({**group, "ids": list(remove_ids)}))
            )
        if not added and not removed:
            return MemberChange(known, [], [], None, True)
        version = db.execute(_BUMP, (at, tenant_id, group_id)).fetchone()[0]
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
