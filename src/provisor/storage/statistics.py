"""The statistics keeper: `ANALYZE` of a hot table that has grown past `GROWTH_FACTOR` since the
last one (PostgreSQL only; issue 21, docs/performance.md "Plans and statistics").

Most hot statements plan by index whatever the statistics say, by their shape. A few cannot be
made so (tests/db/test_plans.py, `NOT_YET_WITHOUT_STATISTICS`): on a table that was never analyzed
every estimate is one row, and they walk a tenant's resources. Autovacuum analyzes only after 50
rows + 10% of the table changed, checked once a minute, and not at all where it is off; so each
worker looks itself, cheaply: at most every `CHECK_SECONDS`, and only when a write transaction
committed in the process since one of the last three looks, one read of
`pg_stat_user_tables` for the hot tables. A table is analyzed when the rows changed since its last
ANALYZE (any, by autovacuum too) exceed `MIN_ROWS` and `GROWTH_FACTOR` times the rows it had then
(`pg_class.reltuples`, -1 when never analyzed). The ANALYZE runs in a transaction of its own on a
pooled connection, never in a request's, under `pg_try_advisory_xact_lock` so that two workers
never analyze one table at once (the second skips it); a failure is logged once and never raised.

SQLite gets nothing: its plans hold without sqlite_stat1 (the plans test has no open statement
there), and `PRAGMA optimize` would take the write lock from requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import text

from provisor.storage.handles import AsyncEngine
from provisor.storage.kind import backend

log = logging.getLogger("provisor.statistics")

#: The tables the hot statements read, where a plan can depend on statistics.
HOT_TABLES = ("resources", "attribute_index", "group_members", "events", "tombstones")
#: Fewer changed rows than this never trigger an ANALYZE (a small table plans well either way).
MIN_ROWS = 1_000
#: Changed rows, as a multiple of the rows at the last ANALYZE, past which it is taken again:
#: 1.0 = the table has (about) doubled. Stale statistics from half the size still give index plans.
GROWTH_FACTOR = 1.0
#: Seconds between two looks of one worker.
CHECK_SECONDS = 10.0
#: The high 32 bits of the advisory lock keys (the low ones are the table's oid).
LOCK_CLASS = 0x5052_4F56  # "PROV"

#: Write transactions committed in this process. A count, not a flag: every keeper of the process
#: (one per app; tests run several) compares it with the count it last saw, so none consumes a
#: write another keeper should look after.
_writes = 0


def note_write() -> None:
    """A write transaction committed in this process: the next look reads the counters."""
    global _writes
    _writes += 1


def due(reltuples: float, changed: int) -> bool:
    """Whether a table with `reltuples` at its last ANALYZE (-1: never) and `changed` rows since
    needs one now."""
    return changed > max(MIN_ROWS, GROWTH_FACTOR * max(reltuples, 0.0))


_COUNTERS = text(
    "SELECT s.relid, s.relname, c.reltuples, s.n_mod_since_analyze FROM pg_stat_user_tables s "
    "JOIN pg_class c ON c.oid = s.relid WHERE s.schemaname = current_schema() AND s.relname = ANY(:names)"
)


class StatisticsKeeper:
    """One per worker: looks every `interval` seconds after writes, analyzes what is `due`."""

    def __init__(self, engine: AsyncEngine, enabled: bool = True, interval: float = CHECK_SECONDS) -> None:
        self.engine = engine
        self.enabled = enabled and backend(engine).analyze_keeper
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._failed = False
        #: Tables this worker analyzed (for logs and tests).
        self.analyzed: list[str] = []

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        looks, seen = 0, _writes
        while True:
            await asyncio.sleep(self.interval)
            if _writes != seen:
                # Three looks per write: a PostgreSQL 15+ server process that reported its counters
                # less than a second before holds the next ones up to 10 s (PGSTAT_IDLE_INTERVAL),
                # so the first look may miss the last writes.
                seen, looks = _writes, 3
            if looks == 0:
                continue
            looks -= 1
            try:
                await self.check()
            except Exception as exc:  # statistics are an optimisation: never an outage
                if not self._failed:
                    self._failed = True
                    log.warning("automatic ANALYZE failed (logged once): %s", exc)

    async def check(self) -> list[str]:
        """Analyze every hot table that is `due`; the names of those analyzed now."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = (await conn.execute(_COUNTERS, {"names": list(HOT_TABLES)})).all()
        done: list[str] = []
        for relid, name, reltuples, changed in rows:
            if due(float(reltuples), int(changed or 0)) and await self._analyze(int(relid), str(name)):
                done.append(str(name))
        self.analyzed.extend(done)
        return done

    async def _analyze(self, relid: int, name: str) -> bool:
        """ANALYZE `name` unless another worker does now. One transaction with a transaction-level
        advisory lock: it is released by the COMMIT, also behind PgBouncer in transaction mode,
        where a session lock could be taken on one server connection and released on another."""
        async with self.engine.begin() as conn:
            key = {"key": (LOCK_CLASS << 32) | relid}
            if not (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), key)).scalar():
                return False  # another worker analyzes it now
            began = time.monotonic()
            await conn.exec_driver_sql(f'ANALYZE "{name}"')
        took = (time.monotonic() - began) * 1000
        log.info("analyzed %s in %.0f ms (grown past the statistics keeper's factor)", name, took)
        return True
