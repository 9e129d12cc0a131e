"""Fast seeding of a Provisor database, straight through SQLAlchemy Core (no HTTP).

Rows are built exactly as the write path builds them: documents in the canonical (coerced) form,
index rows from `provisor.storage.indexing.index_rows` with the same uniqueness rules the services
use, and membership rows as `provisor.storage.members.add_new_members` writes them (display NULL).
Only the transport
differs: PostgreSQL gets `COPY` (with FK triggers off for the load, the data being consistent by
construction), SQLite gets executemany batches, both in one transaction per table batch.

No `ANALYZE` or `VACUUM` follows: a real deployment does not run them after its first sync, so the
bench measures with whatever statistics autovacuum has gathered by then on PostgreSQL (none, or
its own) and none on SQLite (bench/stats.py records which, and the report prints it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import insert, text

from provisor.clock import format_instant
from provisor.schema.coerce import coerce_resource
from provisor.schema.registry import default_registry
from provisor.storage.engine import backend_name, create_engine
from provisor.storage.indexing import index_rows
from provisor.storage.tables import attribute_index, group_members, resources
from provisor.storage.transactions import write_transaction

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
BATCH = 20_000


def user_body(user_name: str, n: int) -> dict[str, Any]:
    """A realistic IdP user (what Okta / Entra send on create)."""
    return {
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Given", "familyName": f"Family{n}"},
        "displayName": f"Given Family{n}",
        "title": "Engineer",
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "active": True,
    }


def user_name(tenant: str, n: int) -> str:
    return f"{tenant}.user{n:07d}@example.com"


@dataclass
class TenantPlan:
    users: int
    #: group displayName -> member count; members are consecutive users, groups do not overlap.
    groups: dict[str, int] = field(default_factory=dict)
    #: group displayName -> member count; members are the tenant's first users in id order, so these
    #: groups overlap the others (a user may be in several). Their memberships are written by one
    #: set-based INSERT ... SELECT in the database, with no row travelling through Python: a million
    #: take seconds.
    shared_groups: dict[str, int] = field(default_factory=dict)


@dataclass
class TenantSeed:
    users: list[tuple[str, str]]  # (id, userName)
    groups: dict[str, str]  # displayName -> id
    #: users that are in no seeded group: the pool for "add one member" scenarios.
    spare_from: int


async def seed(url: str, plan: dict[str, TenantPlan], log: Any = print) -> dict[str, TenantSeed]:
    """Seed every tenant of `plan` (the tenants must exist: `provisor token create` made them)."""
    registry = default_registry(())
    user_rt = registry.resource_type("User")
    group_rt = registry.resource_type("Group")
    # The documents must be stored exactly as the service would store them.
    probe = user_body(user_name("probe", 1), 1)
    canonical = coerce_resource(registry, user_rt, probe)
    assert canonical == {k: v for k, v in probe.items() if k != "schemas"}, canonical
    group_probe = coerce_resource(registry, group_rt, {"schemas": [GROUP_SCHEMA], "displayName": "probe"})
    assert group_probe == {"displayName": "probe"}, group_probe

    engine = create_engine(url)
    pg = backend_name(url) == "postgresql"
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out: dict[str, TenantSeed] = {}
    try:
        for tenant, tp in plan.items():
            started = time.perf_counter()
            users = [(str(uuid.uuid4()), user_name(tenant, n)) for n in range(tp.users)]

            def user_rows(
                users: list[tuple[str, str]] = users, tenant: str = tenant
            ) -> Iterator[tuple[Any, ...]]:
                for n, (uid, name) in enumerate(users):
                    at = format_instant(base + timedelta(microseconds=n * 10))
                    # Stored as the write path stores it: without `schemas` (computed on output).
                    doc = user_body(name, n)
                    del doc["schemas"]
                    yield (tenant, uid, "User", at, doc)

            def index_of(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
                unique = frozenset({"userName"})
                return [
                    (r[0], "User", attr, value, r[1], is_unique)
                    for r in rows
                    for attr, value, is_unique in index_rows(user_rt, r[4], unique)
                ]

            await _load(engine, pg, user_rows(), index_of)

            def group_index(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
                unique = frozenset({"displayName"})
                return [
                    (r[0], "Group", attr, value, r[1], is_unique)
                    for r in rows
                    for attr, value, is_unique in index_rows(group_rt, r[4], unique)
                ]

            groups: dict[str, str] = {}
            offset = 0
            for display, size in tp.groups.items():
                gid = str(uuid.uuid4())
                groups[display] = gid
                at = format_instant(datetime.now(UTC))
                grow = [(tenant, gid, "Group", at, {"displayName": display})]
                await _load(engine, pg, iter(grow), group_index)
                await _members(engine, pg, tenant, gid, [u for u, _ in users[offset : offset + size]])
                offset += size
            shared_started = time.perf_counter()
            for display, size in tp.shared_groups.items():
                groups[display] = await _shared_group(engine, pg, tenant, display, size, group_index)
            shared_seconds = time.perf_counter() - shared_started
            out[tenant] = TenantSeed(users, groups, offset)
            shared = ""
            if tp.shared_groups:
                shared = f", shared groups {tp.shared_groups} ({shared_seconds:.1f}s of it)"
            log(
                f"  seeded tenant {tenant}: {tp.users:,} users, groups {tp.groups}{shared} "
                f"in {time.perf_counter() - started:.1f}s"
            )
    finally:
        await engine.dispose()
    return out


async def _load(engine: Any, pg: bool, rows: Iterator[tuple[Any, ...]], index_of: Any) -> None:
    """Insert resources and their index rows, BATCH at a time."""
    while True:
        batch = [r for _, r in zip(range(BATCH), rows, strict=False)]
        if not batch:
            return
        idx = index_of(batch)
        async with write_transaction(engine) as conn:
            if pg:
                # Through SQLAlchemy first: it sends BEGIN before its first statement, and on the
                # driver alone this SET LOCAL ran outside the transaction (a no-op and a warning).
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
                driver: Any = (await conn.get_raw_connection()).driver_connection
                await driver.copy_records_to_table(
                    "resources",
                    records=[
                        (t, i, rt, 1, at, at, orjson.dumps(doc).decode()) for t, i, rt, at, doc in batch
                    ],
                    columns=[
                        "tenant_id",
                        "id",
                        "resource_type",
                        "version",
                        "created",
                        "last_modified",
                        "doc",
                    ],
                )
                await driver.copy_records_to_table(
                    "attribute_index",
                    records=idx,
                    columns=["tenant_id", "resource_type", "attr", "value_norm", "resource_id", "is_unique"],
                )
            else:
                await conn.execute(
                    insert(resources),
                    [
                        {
                            "tenant_id": t,
                            "id": i,
                            "resource_type": rt,
                            "version": 1,
                            "created": at,
                            "last_modified": at,
                            "doc": doc,
                        }
                        for t, i, rt, at, doc in batch
                    ],
                )
                await conn.execute(
                    insert(attribute_index),
                    [
                        {
                            "tenant_id": t,
                            "resource_type": rt,
                            "attr": a,
                            "value_norm": v,
                            "resource_id": rid,
                            "is_unique": u,
                        }
                        for t, rt, a, v, rid, u in idx
                    ],
                )


async def _members(engine: Any, pg: bool, tenant: str, group_id: str, member_ids: list[str]) -> None:
    for start in range(0, len(member_ids), BATCH * 5):
        chunk = member_ids[start : start + BATCH * 5]
        async with write_transaction(engine) as conn:
            if pg:
                # Through SQLAlchemy first: it sends BEGIN before its first statement, and on the
                # driver alone this SET LOCAL ran outside the transaction (a no-op and a warning).
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
                driver: Any = (await conn.get_raw_connection()).driver_connection
                await driver.copy_records_to_table(
                    "group_members",
                    records=[(tenant, group_id, m, "User") for m in chunk],
                    columns=["tenant_id", "group_id", "member_id", "member_type"],
                )
            else:
                # The rows `provisor.storage.members.add_new_members` writes, with `display` left NULL
                # (derived from the member), written directly so the seeder does not depend on that
                # function's tuple shape.
                await conn.execute(
                    insert(group_members),
                    [
                        {"tenant_id": tenant, "group_id": group_id, "member_id": m, "member_type": "User"}
                        for m in chunk
                    ],
                )


async def _shared_group(engine: Any, pg: bool, tenant: str, display: str, size: int, group_index: Any) -> str:
    """A group whose members are the tenant's first `size` users by id, inserted set-based."""
    gid = str(uuid.uuid4())
    at = format_instant(datetime.now(UTC))
    await _load(engine, pg, iter([(tenant, gid, "Group", at, {"displayName": display})]), group_index)
    statement = text(
        "INSERT INTO group_members (tenant_id, group_id, member_id, member_type) "
        "SELECT :owner, :group, id, 'User' FROM resources "
        "WHERE tenant_id = :tenant AND resource_type = 'User' ORDER BY id LIMIT :size"
    )
    async with write_transaction(engine) as conn:
        if pg:  # consistent by construction: no per-row foreign key trigger
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        done = await conn.execute(statement, {"owner": tenant, "tenant": tenant, "group": gid, "size": size})
        assert done.rowcount == size, f"{display}: {done.rowcount} members of {size} (too few users)"
    return gid
