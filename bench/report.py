"""Render results as a Markdown table (for docs/performance.md).

    python -m bench.report [RESULTS.json ...]

With several files (e.g. a run per database), each later file replaces the earlier files' rows for
the targets it ran (and its day-one runs those of the same database). Below the table: the day-one
scenario, issue 21's targets and "SQLite at least as fast as PostgreSQL", each with PASS/MISS
(bench/targets.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench import targets
from bench.run import RESULTS, at_reference, machine_line, speed


def _rate(r: dict[str, Any]) -> str:
    if r["rps"] is None:
        return f"{r['seconds']:.2f} s" if r["seconds"] else ""
    text = f"{r['rps']:,.0f} {r['unit']}"
    if r["unit"] == "users/s":
        text += f" ({r['seconds']:.1f} s)"
    return text


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def markdown(report: dict[str, Any]) -> str:
    rows = report["results"]
    machine = report.get("machine")
    machine_speed = speed(machine) if machine else 0.0
    peer = {r["scenario"]: r for r in rows if r["target"] == "peer"}
    lines = [
        "| scenario | database | conc | throughput | at ref. | p50 ms | p99 ms | CPU ms/req "
        "| peak RSS/worker MB | vs peer | load | steal % | status |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    previous = None
    for r in rows:
        label = report["scenarios"][r["scenario"]] if r["scenario"] != previous else ""
        previous = r["scenario"]
        vs = ""
        p = peer.get(r["scenario"])
        if r["target"] != "peer" and r["rps"] and p is not None:
            vs = f"{r['rps'] / p['rps']:.1f}x" if p.get("ok") and p.get("rps") else "n/a"
        status = r["status"] + (f"; {r['note']}" if r.get("note") else "")
        target = "peer (1 worker)" if r["target"] == "peer" else r["target"]
        rss = "/".join(f"{v:.0f}" for v in r["rss_mb"])
        cpu = "" if r.get("cpu_ms") is None else f"{r['cpu_ms']:.2f}"
        cells = [
            label.replace("|", "/"),
            target,
            str(r["concurrency"] or ""),
            _rate(r),
            at_reference(r["rps"], r["unit"], machine_speed),
            _ms(r["p50_ms"]),
            _ms(r["p99_ms"]),
            cpu,
            rss,
            vs,
            f"{r.get('load', 0):.1f}",
            "" if r.get("steal") is None else f"{r['steal']:.0f}",
            status.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if machine:
        lines += ["", machine_line(machine)]
    lines += details(report)
    return "\n".join(lines) + "\n" + targets.markdown(report)


def details(report: dict[str, Any]) -> list[str]:
    """The figures beyond a rate that some scenarios measure (roles, snapshot: `extra`), one table
    per scenario with a column per database."""
    out: list[str] = []
    for scenario, label in report["scenarios"].items():
        rows = [r for r in report["results"] if r["scenario"] == scenario and r.get("extra")]
        if not rows:
            continue
        names = list(dict.fromkeys(k for r in rows for k in r["extra"]))
        out += ["", f"**{label}**", "", "| | " + " | ".join(r["target"] for r in rows) + " |"]
        out.append("|---|" + "--:|" * len(rows))
        for name in names:
            cells = [_figure(r["extra"].get(name)) for r in rows]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def _figure(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    merged = dict(reports[0])
    rows = list(merged["results"])
    for report in reports[1:]:
        ran = set(report["targets"])
        rows = [r for r in rows if r["target"] not in ran] + report["results"]
        merged["targets"] = {**merged["targets"], **report["targets"]}
        dayone = {run["database"]: run for run in merged.get("dayone") or []}
        dayone.update({run["database"]: run for run in report.get("dayone") or []})
        merged["dayone"] = list(dayone.values())
        merged["statistics"] = {**(merged.get("statistics") or {}), **(report.get("statistics") or {})}
        merged["statistics_notes"] = [
            *(n for n in merged.get("statistics_notes") or [] if not n.startswith(tuple(ran))),
            *(report.get("statistics_notes") or []),
        ]
    order = list(merged["scenarios"])
    targets = ["sqlite", "postgresql", "peer"]
    rows.sort(key=lambda r: (order.index(r["scenario"]), targets.index(r["target"])))
    merged["results"] = rows
    return merged


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or [RESULTS / "latest-full.json"]
    print(markdown(merge([json.loads(p.read_text()) for p in paths])))


if __name__ == "__main__":
    main()
