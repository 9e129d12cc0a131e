"""Whether the host reclaims page cache on its own, beside the processor (bench/cpu.py).

Some machines run DAMON with a `pageout` scheme: the kernel evicts memory that looked idle for a
while even when nothing else needs it. On the machines of 2026-12-07 it evicted unmapped page
cache idle for 60 s, up to 128 MiB a second. SQLite has no cache of its own that survives another
connection's write, so its hot pages are that page cache, and a target that sat idle between two
scenarios then reads them from disk (docs/performance.md, the nineteenth round). The report says
so, so that a run on such a machine can be told from one without.
"""

from __future__ import annotations

from pathlib import Path

#: DAMON's sysfs interface (Linux 5.18 and later).
KDAMONDS = Path("/sys/kernel/mm/damon/admin/kdamonds")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _number(path: Path) -> int:
    """A sysfs integer, 0 when absent or unreadable."""
    value = _read(path)
    return int(value) if value.isdigit() else 0


def pageout_schemes(root: Path = KDAMONDS) -> list[dict[str, float]]:
    """Each running DAMON `pageout` scheme: the idle time after which it evicts (seconds) and its
    quota (MiB a second; 0 when it has none). Empty when DAMON is absent, off or unreadable."""
    found: list[dict[str, float]] = []
    for kdamond in sorted(root.glob("[0-9]*")):
        if _read(kdamond / "state") != "on":
            continue
        for context in sorted((kdamond / "contexts").glob("[0-9]*")):
            aggregation_us = _number(context / "monitoring_attrs" / "intervals" / "aggr_us")
            for scheme in sorted((context / "schemes").glob("[0-9]*")):
                if _read(scheme / "action") != "pageout":
                    continue
                age = _number(scheme / "access_pattern" / "age" / "min")
                quota = _number(scheme / "quotas" / "bytes")
                interval_ms = _number(scheme / "quotas" / "reset_interval_ms")
                per_second = quota / 1_048_576 * 1000 / interval_ms if interval_ms else 0.0
                found.append({"idle_s": age * aggregation_us / 1e6, "mib_per_s": per_second})
    return found


def line(schemes: list[dict[str, float]]) -> str:
    """One sentence for the report, or "" when the host runs no such reclaim."""
    if not schemes:
        return ""
    parts = []
    for scheme in schemes:
        quota = f", up to {scheme['mib_per_s']:,.0f} MiB/s" if scheme["mib_per_s"] else ""
        parts.append(f"idle for {scheme['idle_s']:g} s{quota}")
    return (
        "The kernel evicts memory on its own (DAMON pageout: " + "; ".join(parts) + "), so a database"
        " file's pages that a target did not touch lately may have to be read from disk again."
    )
