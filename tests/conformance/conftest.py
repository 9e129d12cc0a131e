"""Conformance suites published by identity providers, run against Provisor.

The suites are data kept outside the repository, in `<repo root>/../shared/conformance/` (CI clones the repo
with a copy of `shared/` beside it); they are referenced there, never copied in. Every suite test records its
counts with `record_property("conformance", ...)`; the terminal summary prints one line per suite run and one
line in total (this works under pytest-xdist too, as user properties travel with the reports).
"""

from __future__ import annotations

import json
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows: list[dict[str, Any]] = []
    for key in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(key, []):
            if getattr(report, "when", "call") != "call":
                continue
            for name, value in getattr(report, "user_properties", []):
                if name == "conformance":
                    rows.append(json.loads(value))
    if not rows:
        return
    terminalreporter.section("IdP conformance suites")
    for row in sorted(rows, key=lambda r: (r["suite"], r["db"])):
        mark = "ok  " if row["passed"] == row["total"] else "FAIL"
        terminalreporter.write_line(
            f"{mark} {row['suite']} [{row['db']}]: {row['passed']}/{row['total']} assertions passed"
        )
    passed = sum(r["passed"] for r in rows)
    total = sum(r["total"] for r in rows)
    runs_ok = sum(r["passed"] == r["total"] for r in rows)
    terminalreporter.write_line(
        f"conformance summary: {passed}/{total} assertions passed; {runs_ok}/{len(rows)} runs green"
    )
