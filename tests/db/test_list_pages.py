"""Unfiltered list pages are read as a deferred join on PostgreSQL (the page's ids from the index,
then their rows); every page equals what the plain `OFFSET` query returns, ties included."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, true, update
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.schema.registry import default_registry
from provisor.storage.filter_sql import SqlContext, sort_expression
from provisor.storage.resources import _index_columns, list_resources
from provisor.storage.tables import resources
from provisor.storage.transactions import autocommit, write_transaction
from tests.scim_client import Scim, run_db

C = resources.c
ORDERS: dict[str, list[ColumnElement[Any]]] = {
    "created": [C.created.asc().nulls_last(), C.id.asc()],
    "created desc": [C.created.desc().nulls_last(), C.id.desc()],
    "created, reversed for a cursor": [C.created.desc().nulls_first(), C.id.desc()],
    "lastModified": [C.last_modified.asc().nulls_last(), C.id.asc()],
}


def _pages(url: str, tenant_id: str, order: list[ColumnElement[Any]], *, plain: bool) -> list[list[str]]:
    async def work(engine: AsyncEngine) -> list[list[str]]:
        out = []
        async with autocommit(engine) as conn:
            for offset, limit in ((0, 5), (3, 4), (7, 10), (10, 3), (12, 5), (40, 5)):
                rows = await list_resources(
                    conn,
                    tenant_id,
                    "User",
                    where=None,
                    order_by=order,
                    offset=offset,
                    limit=limit,
                    extra_where=(true(),) if plain else (),  # any extra condition: the plain query
                )
                out.append([r.id for r in rows])
        return out

    return run_db(url, work)


def test_deferred_pages_equal_plain_pages(scim: Scim) -> None:
    ids = [scim.create_user(f"page{n}")["id"] for n in range(13)]
    scim.create_group("not a user")  # another type in the tenant stays out of the pages

    async def tie(engine: AsyncEngine) -> None:  # equal keys: the id decides, on both paths
        async with write_transaction(engine) as conn:
            await conn.execute(
                update(resources).where(C.id.in_(ids[4:9])).values(created="2026-01-01T00:00:00.000000Z")
            )

    run_db(scim.database_url, tie)
    for name, order in ORDERS.items():
        assert _index_columns(order) is not None, name
        deferred = _pages(scim.database_url, scim.tenant_id, order, plain=False)
        assert deferred == _pages(scim.database_url, scim.tenant_id, order, plain=True), name
        assert {i for page in deferred[:3] for i in page} == set(ids), name  # rows 0-4, 3-6, 7-12
        assert deferred[-1] == [], name


def test_only_index_columns_take_the_deferred_path() -> None:
    registry = default_registry()
    rt = registry.resource_type("User")
    path = registry.resolve(rt, "userName")
    assert path is not None
    for dialect in ("sqlite", "postgresql"):
        by_name = sort_expression(path, SqlContext(dialect, "t", rt))
        assert _index_columns([by_name.asc(), C.id.asc()]) is None
    assert _index_columns([C.version.asc(), C.id.asc()]) is None
