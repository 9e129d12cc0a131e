"""The group-membership statements' contract and the building blocks both databases share.

`storage/members.py` is what the service calls; it takes the per-database part
(`Backend.members`, `storage/postgres/members.py` or `storage/sqlite/members.py`) from
`storage/kind.py`. This module is what those parts import, so it must never import `kind.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.statements import DirectStatement
from provisor.storage.tables import group_members, resources

#: A member's display name: the group's or user's displayName, else its userName. Built once.
DISPLAY = func.coalesce(
    resources.c.doc["displayName"].as_string(), resources.c.doc["userName"].as_string(), literal("")
)

#: The rows of one group (`tenant_id`, `group_id` parameters).
IN_GROUP = and_(
    group_members.c.tenant_id == bindparam("tenant_id"), group_members.c.group_id == bindparam("group_id")
)


def existing_members(in_ids: ColumnElement[bool]) -> DirectStatement:
    """`MemberStatements.existing` of one database: `in_ids` is how it tests
    `group_members.member_id` against the `ids` parameter, which is all that differs."""
    return DirectStatement(select(group_members.c.member_id).where(IN_GROUP, in_ids))


def removed_members(in_ids: ColumnElement[bool]) -> DirectStatement:
    """`MemberStatements.remove` of one database (`in_ids` as for `existing_members`)."""
    return DirectStatement(delete(group_members).where(IN_GROUP, in_ids).returning(group_members.c.member_id))


@dataclass(frozen=True)
class MemberChange:
    """What `change_members_at_once` found and did."""

    known: dict[str, str]  # requested add ids that exist -> their resource type
    added: list[str]  # in request order
    removed: list[str]  # sorted
    version: int | None  # the group's new version, None when nothing changed (or no group)
    #: False: nothing was written: refused (unknown member or the group itself), the group is not
    #: stored, or the tenant maps groups to roles (whose events only the locked path computes).
    applied: bool


class MemberStatements(Protocol):
    """One database's member statements, each built once and run on the driver connection
    (storage/direct.py). A list of ids travels as one parameter `ids` whatever its length, so
    each statement's SQL is one text: its plan is cached and its parameters never exceed a limit.
    """

    #: (id, resource_type) of each existing resource among `ids` of `tenant_id`; one primary-key
    #: probe per id, never a scan of the tenant's resources.
    types_of: DirectStatement
    #: member_id of the rows of group (`tenant_id`, `group_id`) whose member is among `ids`.
    existing: DirectStatement
    #: Deletes the rows of group (`tenant_id`, `group_id`) whose member is among `ids`; RETURNING
    #: each deleted member_id.
    remove: DirectStatement
    #: Inserts the rows that `add_new_params` describes unless present (ON CONFLICT DO NOTHING),
    #: RETURNING the member_id of each row that went in.
    add_new: DirectStatement
    #: (member_id, group_id, display) of every group directly containing a member among `ids` of
    #: `tenant_id`, ordered by member, display, group; index-driven from the ids whatever the
    #: table's statistics say.
    direct_groups: DirectStatement

    def add_new_params(
        self, tenant_id: str, group_id: str, members: Sequence[tuple[str, str, str | None]]
    ) -> dict[str, Any]:
        """`add_new`'s parameters for (member_id, member_type, display) rows (at least one)."""
        ...

    async def change_at_once(
        self,
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
        """`storage.members.change_members_at_once`: all of it or nothing, atomically, outside any
        transaction of the caller's and in as few round trips as the database allows."""
        ...
