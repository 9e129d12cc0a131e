"""A listing of one resource type as SQL: the filter, the sort key, the order and the keyset
position, from what the service has (the bound filter, the sort attribute, the direction and
the cursor position). The service passes plain values and gets rows back; the statements are
storage/resources.py's (`list_resources`, `list_resources_keyed`, `count_resources`).

A listing is planned once per request (`plan_listing`): its page and its count share the plan,
so the probe of a narrow index range (storage/resources.py `narrow_driver`) runs once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select

from provisor.filter.ast import Compare, Filter
from provisor.schema.model import AttrPath, ResourceType
from provisor.storage.filter_sql import (
    SqlContext,
    broad_prefix,
    compile_filter,
    indexed_prefix,
    membership_rows,
    sort_expression,
)
from provisor.storage.filter_sql import indexed_equality as indexed_equality
from provisor.storage.handles import AsyncConnection
from provisor.storage.keyset import Position, keyset_condition
from provisor.storage.kind import backend
from provisor.storage.resources import (
    StoredResource,
    count_resources,
    list_resources,
    list_resources_keyed,
    narrow_driver,
)
from provisor.storage.tables import resources


class Listing:
    """One filtered, sorted listing on `conn`: pages by offset or by keyset, and the count."""

    def __init__(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        resource_type: str,
        *,
        key: ColumnElement[Any],
        descending: bool,
        where: ColumnElement[bool] | None,
        driver: Select[Any] | None,
        index_rows: Select[Any] | None,
        several_each: bool,
    ) -> None:
        self._conn = conn
        self._tenant_id = tenant_id
        self._resource_type = resource_type
        self._key = key
        self._descending = descending
        self._where = where
        self._driver = driver
        self._index_rows = index_rows
        self._several_each = several_each

    def _order_by(self, *, reverse: bool) -> list[ColumnElement[Any]]:
        """`key NULLS LAST, id` in the requested direction (or exactly its reverse)."""
        key, ident = self._key, resources.c.id
        down = self._descending != reverse
        first, second = (key.desc(), ident.desc()) if down else (key.asc(), ident.asc())
        return [first.nulls_first() if reverse else first.nulls_last(), second]

    async def page(self, *, offset: int, limit: int) -> list[StoredResource]:
        """Rows `offset` to `offset + limit` in the listing's order."""
        return await list_resources(
            self._conn,
            self._tenant_id,
            self._resource_type,
            where=self._where,
            order_by=self._order_by(reverse=False),
            offset=offset,
            limit=limit,
            driver=self._driver,
        )

    async def keyed_page(self, position: Position | None, *, limit: int) -> list[tuple[StoredResource, Any]]:
        """Up to `limit` rows strictly after the position (or before it, nearest first, when it
        looks backward; None: from the start), each with its sort key's value for the next cursor."""
        conditions = [c for c in (self._where,) if c is not None]
        if position is not None:
            conditions.append(
                keyset_condition(self._key, resources.c.id, position, descending=self._descending)
            )
        forward = position is None or position.forward
        return await list_resources_keyed(
            self._conn,
            self._tenant_id,
            self._resource_type,
            where=conditions,
            key=self._key,
            order_by=self._order_by(reverse=not forward),
            limit=limit,
            driver=self._driver,
        )

    async def count(self) -> int:
        """All the resources the filter matches."""
        return await count_resources(
            self._conn,
            self._tenant_id,
            self._resource_type,
            self._where,
            driver=self._driver,
            index_rows=self._index_rows,
            several_each=self._several_each,
        )


async def plan_listing(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    rt: ResourceType,
    node: Filter | None,
    sort: AttrPath | None,
    descending: bool,
) -> Listing:
    """The listing of `rt`'s resources matching the bound filter `node` (None: all), ordered by
    `sort` (None: creation time, stable between pages), NULLs last, then id. Raises the SCIM
    `invalidValue` of an unsortable attribute (storage/filter_sql.py `sort_expression`).

    A narrow indexed `sw` (or `members.value eq` / `groups.value eq`) starts from its index range;
    a broad one is counted from it (storage/resources.py `narrow_driver`)."""
    sql = SqlContext(backend(conn).name, tenant_id, rt)
    key = resources.c.created if sort is None else sort_expression(sort, sql)
    where: ColumnElement[bool] | None = None
    driver: Select[Any] | None = None
    index_rows: Select[Any] | None = None
    several = True
    if node is not None:
        prefix = indexed_prefix(node, sql)
        # `groups.value eq` / `members.value eq`: the same, from the membership rows.
        rows = prefix if prefix is not None else membership_rows(node, sql)
        narrow = None if rows is None else await narrow_driver(conn, rows)
        if narrow is not None:
            driver = narrow
        elif prefix is not None:
            path = node.attr.path if isinstance(node, Compare) else None
            several = path is None or path.attribute.multi_valued
            where, index_rows = broad_prefix(node, sql), prefix
        else:
            where, index_rows = compile_filter(node, sql), rows
            several = rows is None
    return Listing(
        conn,
        tenant_id,
        rt.name,
        key=key,
        descending=descending,
        where=where,
        driver=driver,
        index_rows=index_rows,
        several_each=several,
    )
