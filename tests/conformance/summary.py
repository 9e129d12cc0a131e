"""The IdP conformance summary printed at the end of a run (hooked in by the root conftest).

Suite tests record their assertion counts with `record_property("conformance", ...)`, but a count alone
cannot tell a green run: a suite test that errors before recording (suite file missing, server that does
not start, newman that cannot be installed) records nothing. So the outcome of every test under
`tests/conformance/` counts too: a test that failed, errored or was skipped is a red run, counts or not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "tests/conformance/"
BAD_OUTCOMES = ("failed", "error")
NOT_RUN_OUTCOMES = ("skipped", "xfailed", "xpassed")  # a suite that did not run (or should not pass) is red


@dataclass
class Run:
    label: str
    passed: int
    total: int
    test_ok: bool
    note: str = ""

    @property
    def green(self) -> bool:
        return self.test_ok and self.total > 0 and self.passed == self.total


def _runs(stats: Mapping[str, Sequence[Any]]) -> tuple[list[Run], int, int]:
    """(runs, tests seen, tests not passed) from pytest's terminal reporter stats."""
    outcome: dict[str, str] = {}  # nodeid -> "passed" | "skipped" | "failed"
    counts: dict[str, dict[str, Any]] = {}
    for key, reports in stats.items():
        for report in reports:
            nodeid = str(getattr(report, "nodeid", "") or "")
            if not nodeid.startswith(PREFIX):
                continue
            if key in BAD_OUTCOMES:
                outcome[nodeid] = "failed"  # any phase, collection included
            elif key == "passed":
                outcome.setdefault(nodeid, "passed")
            elif key in NOT_RUN_OUTCOMES:
                outcome[nodeid] = "failed" if outcome.get(nodeid) == "failed" else "skipped"
            if getattr(report, "when", None) == "call":
                for name, value in getattr(report, "user_properties", []):
                    if name == "conformance":
                        counts[nodeid] = json.loads(value)
    runs: list[Run] = []
    for nodeid, state in sorted(outcome.items()):
        row = counts.get(nodeid)
        ok = state == "passed"
        if row is not None:
            label = f"{row['suite']} [{row['db']}]"
            note = "" if ok else f" (test {state}: {nodeid})"
            runs.append(Run(label, int(row["passed"]), int(row["total"]), ok, note))
        elif not ok:
            runs.append(Run(nodeid, 0, 0, False, f" ({state} before recording any count)"))
    tests_bad = sum(state != "passed" for state in outcome.values())
    return runs, len(outcome), tests_bad


def summary_lines(stats: Mapping[str, Sequence[Any]]) -> list[str]:
    """One line per suite run (and per failed conformance test), then the total; empty if none ran."""
    runs, tests, tests_bad = _runs(stats)
    if not tests:
        return []
    lines = [
        f"{'ok  ' if run.green else 'FAIL'} {run.label}: {run.passed}/{run.total} assertions passed{run.note}"
        for run in sorted(runs, key=lambda r: r.label)
    ]
    passed = sum(run.passed for run in runs)
    total = sum(run.total for run in runs)
    green = sum(run.green for run in runs)
    verdict = "green" if tests_bad == 0 and green == len(runs) else "RED"
    lines.append(
        f"conformance summary: {passed}/{total} assertions passed; {green}/{len(runs)} runs green; "
        f"{tests - tests_bad}/{tests} tests passed: {verdict}"
    )
    return lines
