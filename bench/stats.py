"""What the planners know about the bench's tables, and a manual ANALYZE.

The bench no longer analyzes after seeding (a real deployment does not), so its PostgreSQL figures
depend on whether autovacuum has analyzed the tables by the time a scenario runs. These probes
record that, so the report can say which statistics each set of figures ran with. SQLite never
analyzes by itself; its probe says whether `sqlite_stat1` holds anything.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from typing import Any

#: The tables the hot statements read (users, their index rows, memberships, the event feed).
TABLES = ("resources", "attribute_index", "group_members", "events")
#: The key of `state()`'s server settings (PostgreSQL), beside the tables.
SETTINGS = "_settings"


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


async def _pg_state(url: str) -> dict[str, dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT relname, n_live_tup, n_mod_since_analyze, last_analyze, last_autoanalyze,"
            " autoanalyze_count, analyze_count, last_autovacuum, autovacuum_count"
            " FROM pg_stat_user_tables WHERE relname = ANY($1::text[])",
            list(TABLES),
        )
        autovacuum = await conn.fetchval("SELECT current_setting('autovacuum')")
    finally:
        await conn.close()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out[r["relname"]] = {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items() if k != "relname"
        }
    out[SETTINGS] = {"autovacuum": autovacuum}
    return out


def state(url: str) -> dict[str, dict[str, Any]]:
    """Per table: PostgreSQL's analyze/autovacuum counters and times, or SQLite's `sqlite_stat1` rows."""
    if url.startswith("sqlite"):
        with sqlite3.connect(_sqlite_path(url), timeout=30) as conn:
            have = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()
            counts = (
                dict(conn.execute("SELECT tbl, count(*) FROM sqlite_stat1 GROUP BY tbl").fetchall())
                if have
                else {}
            )
        return {t: {"stat1_rows": int(counts.get(t, 0))} for t in TABLES}
    return asyncio.run(_pg_state(url))


def analyze(url: str) -> None:
    """A manual ANALYZE of the whole database (what the 'after ANALYZE' figures run with)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(_sqlite_path(url), timeout=30)
        try:
            conn.execute("ANALYZE")
            conn.commit()
        finally:
            conn.close()
        return

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(run())


def _analyzed(tables: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Table -> how many times it was analyzed, by autovacuum or by an `ANALYZE` statement
    (Provisor's statistics keeper, storage/statistics.py, or the harness's own between day one's
    two halves); SQLite: its `sqlite_stat1` rows."""
    out: dict[str, int] = {}
    for name, t in tables.items():
        if name == SETTINGS:
            continue
        if "stat1_rows" in t:
            out[name] = t["stat1_rows"]
        else:
            out[name] = int(t.get("autoanalyze_count") or 0) + int(t.get("analyze_count") or 0)
    return out


def analyzed_tables(tables: dict[str, dict[str, Any]]) -> set[str]:
    """The tables analyzed at least once (by an `ANALYZE` statement or by autovacuum)."""
    return {name for name, count in _analyzed(tables).items() if count > 0}


def _last_analyzed(t: dict[str, Any]) -> str:
    """The later of the table's last ANALYZE statement and autovacuum's last analyze (ISO text)."""
    return max(str(t.get("last_analyze") or ""), str(t.get("last_autoanalyze") or ""))


def _when(table: str, stamp: str, timeline: list[tuple[str, str]]) -> str:
    """'table at HH:MM:SS' and, when known, the scenario running then (the last one started before)."""
    text = f"{table} at {stamp[11:19]} UTC"
    if stamp and timeline:
        at = datetime.fromisoformat(stamp)
        started = [name for start, name in sorted(timeline) if datetime.fromisoformat(start) <= at]
        text += f" (during {started[-1]})" if started else " (before the first scenario)"
    return text


def describe(
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    what: str,
    timeline: list[tuple[str, str]] | None = None,
) -> str:
    """One sentence: which statistics `what` (a span of scenarios) ran with.

    `before`/`after` are `state()` at the span's start and end; `timeline` is (ISO start time,
    scenario) of the span's scenarios, to name the one autovacuum's ANALYZE fell into."""
    if not before and not after:
        return f"{what}: no statistics state recorded"
    sqlite = any("stat1_rows" in t for t in (after or before).values())
    had, has = _analyzed(before), _analyzed(after)
    if sqlite:
        if not any(has.values()):
            return f"{what}: SQLite had no statistics (sqlite_stat1 empty; SQLite never analyzes by itself)"
        return f"{what}: SQLite had statistics on {', '.join(t for t, n in has.items() if n)}"
    already = sorted(t for t, n in had.items() if n)
    during = sorted(t for t in has if has[t] > had.get(t, 0))
    parts: list[str] = []
    if already:
        parts.append(f"{', '.join(already)} had been analyzed before it started")
    if during:
        times = ", ".join(_when(t, _last_analyzed(after[t]), timeline or []) for t in during)
        parts.append(
            f"analyzed {times} during it (by Provisor's statistics keeper or autovacuum), so these"
            " figures depend on that timing"
        )
    if not parts:
        parts.append(
            "no table had been analyzed (PostgreSQL planned with no statistics) and none was during it"
        )
    if (after or before).get(SETTINGS, {}).get("autovacuum") == "off":
        parts.append(
            "autovacuum is off on this PostgreSQL server: only Provisor's statistics keeper analyzes"
        )
    return f"{what}: " + "; ".join(parts)
