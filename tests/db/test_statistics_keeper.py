"""The statistics keeper (storage/statistics.py): a deployment whose tables are never analyzed by
autovacuum gets its hot tables analyzed by Provisor once they have grown, unless
`PROVISOR_AUTO_ANALYZE` is off; SQLite is left alone.

Each test has a database of its own with autovacuum off for every table (as on this machine's and
CI's server, where it is off altogether), so any ANALYZE seen was Provisor's.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from provisor.storage.statistics import CHECK_SECONDS, LOCK_CLASS, StatisticsKeeper
from tests.db.test_plans import autovacuum_off
from tests.scim_client import GROUP_URN, USER_URN, mint_token, run_db

TENANT = "keeper"
USERS = 2_000
MEMBERS = 1_100
#: Tables the writes below grow past the keeper's factor (tombstones stay empty).
GROWN = ("resources", "attribute_index", "group_members", "events")
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


async def _statistics(engine: AsyncEngine) -> dict[str, tuple[Any, float]]:
    """table -> (last_analyze, reltuples) for the grown tables."""
    async with engine.connect() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT s.relname, coalesce(s.last_analyze, s.last_autoanalyze), c.reltuples "
                "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE s.relname IN ('resources', 'attribute_index', 'group_members', 'events')"
            )
        ).all()
    return {name: (at, float(tuples)) for name, at, tuples in rows}


async def _statistics_changed(engine: AsyncEngine) -> int:
    """Rows changed in `resources` since its last ANALYZE, as pg_stat knows them now."""
    async with engine.connect() as conn:
        sql = "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'resources'"
        return int((await conn.exec_driver_sql(sql)).scalar_one())


def _grow(client: TestClient) -> None:
    """2,000 users and a group of 1,100 of them, over HTTP (Bulk, 1,000 operations a request)."""
    ids: list[str] = []
    for start in range(0, USERS, 1_000):
        ops = [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"u{n}",
                "data": {"schemas": [USER_URN], "userName": f"keeper{n:05d}@example.com"},
            }
            for n in range(start, start + 1_000)
        ]
        response = client.post("/scim/v2/Bulk", json={"schemas": [BULK_REQUEST], "Operations": ops})
        assert response.status_code == 200, response.text
        results = response.json()["Operations"]
        assert all(r["status"] == "201" for r in results), results[:3]
        ids += [r["location"].rsplit("/", 1)[1] for r in results]
    members = [{"value": rid} for rid in ids[:MEMBERS]]
    group = {"schemas": [GROUP_URN], "displayName": "keeper-large", "members": members}
    response = client.post("/scim/v2/Groups", json=group)
    assert response.status_code == 201, response.text


def _serve(url: str, auto_analyze: bool, wait: Any) -> None:
    app = create_app(Settings(database_url=url, webhooks_enabled=False, auto_analyze=auto_analyze))
    with TestClient(app, base_url="http://testserver") as client:
        client.headers["Authorization"] = f"Bearer {mint_token(url, TENANT)}"
        _grow(client)
        wait()  # while the app (and its keeper) still runs


@pytest.mark.parametrize("auto_analyze", [True, False])
def test_grown_tables_are_analyzed_unless_turned_off(fresh_database_url: str, auto_analyze: bool) -> None:
    url = fresh_database_url
    if url.startswith("sqlite"):
        _serve(url, auto_analyze, lambda: time.sleep(CHECK_SECONDS + 3))
        path = url.split("///", 1)[1]
        with sqlite3.connect(path) as db:
            stat1 = db.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchall()
        assert stat1 == [], "the keeper leaves SQLite alone"
        return
    run_db(url, autovacuum_off)
    before = run_db(url, _statistics)
    assert all(at is None and tuples < 0 for at, tuples in before.values()), before
    seen: dict[str, tuple[Any, float]] = {}

    def wait() -> None:
        if not auto_analyze:
            time.sleep(CHECK_SECONDS * 2 + 3)  # two looks of the keeper, were it on
            seen.update(run_db(url, _statistics))
            return
        deadline = time.monotonic() + CHECK_SECONDS * 6
        while time.monotonic() < deadline:
            seen.update(run_db(url, _statistics))
            if all(seen[t][0] is not None for t in GROWN):
                return
            time.sleep(1.0)

    _serve(url, auto_analyze, wait)
    if auto_analyze:
        for table in GROWN:
            at, tuples = seen[table]
            assert at is not None and tuples >= 1_000, (table, seen)
    else:
        assert all(at is None and tuples < 0 for at, tuples in seen.values()), seen


@pytest.mark.parametrize("fresh_database_url", ["postgresql"], indirect=True)  # SQLite: nothing to keep
def test_nothing_is_analyzed_before_the_factor(fresh_database_url: str) -> None:
    """A few writes do not trigger an ANALYZE: the keeper acts on growth, not on every write."""
    url = fresh_database_url
    run_db(url, autovacuum_off)

    async def few(engine: AsyncEngine) -> list[str]:
        return await StatisticsKeeper(engine).check()

    app = create_app(Settings(database_url=url, webhooks_enabled=False, auto_analyze=False))
    with TestClient(app, base_url="http://testserver") as client:
        client.headers["Authorization"] = f"Bearer {mint_token(url, TENANT)}"
        for n in range(20):
            user = {"schemas": [USER_URN], "userName": f"few{n}@example.com"}
            assert client.post("/scim/v2/Users", json=user).status_code == 201
    time.sleep(1.5)
    assert run_db(url, few) == []


@pytest.mark.parametrize("fresh_database_url", ["postgresql"], indirect=True)  # SQLite: nothing to keep
def test_a_table_another_worker_analyzes_is_skipped(fresh_database_url: str) -> None:
    """Two workers never analyze one table at once: while another holds the table's lock, the
    keeper skips it at once (no wait), and analyzes it at a later look."""
    url = fresh_database_url
    run_db(url, autovacuum_off)
    app = create_app(Settings(database_url=url, webhooks_enabled=False, auto_analyze=False))
    with TestClient(app, base_url="http://testserver") as client:
        client.headers["Authorization"] = f"Bearer {mint_token(url, TENANT)}"
        ops = [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"u{n}",
                "data": {"schemas": [USER_URN], "userName": f"locked{n:05d}@example.com"},
            }
            for n in range(1_100)
        ]
        for part in (ops[:1_000], ops[1_000:]):
            response = client.post("/scim/v2/Bulk", json={"schemas": [BULK_REQUEST], "Operations": part})
            assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30  # server processes may report their counters up to 10 s late
    while run_db(url, _statistics_changed) < 1_100 and time.monotonic() < deadline:
        time.sleep(0.5)

    async def contended(engine: AsyncEngine) -> tuple[list[str], float, list[str]]:
        keeper = StatisticsKeeper(engine)
        async with engine.connect() as other:
            await other.exec_driver_sql(
                f"SELECT pg_advisory_xact_lock(({LOCK_CLASS}::bigint << 32) "
                "| 'resources'::regclass::oid::bigint)"
            )
            began = time.monotonic()
            while_held = await keeper.check()
            took = time.monotonic() - began
            await other.rollback()
        return while_held, took, await keeper.check()

    while_held, took, after = run_db(url, contended)
    assert "resources" not in while_held and "events" in while_held, while_held
    assert took < 5.0, took  # skipped, not waited for (generous on a loaded machine)
    assert after == ["resources"], after
