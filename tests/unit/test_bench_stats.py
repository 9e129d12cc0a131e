"""bench/stats.py says which statistics a span of scenarios ran with, whoever analyzed.

A run of 2026-12-06 printed "no table had been analyzed ... and none was during it" while
Provisor's statistics keeper (storage/statistics.py) had analyzed three tables in the middle of
a scenario: the harness counted autovacuum's ANALYZE only.
"""

from __future__ import annotations

from typing import Any

from bench.stats import SETTINGS, describe


def table(
    *, manual: int = 0, auto: int = 0, last: str | None = None, last_auto: str | None = None
) -> dict[str, Any]:
    return {
        "analyze_count": manual,
        "autoanalyze_count": auto,
        "last_analyze": last,
        "last_autoanalyze": last_auto,
    }


OFF = {SETTINGS: {"autovacuum": "off"}}


def test_an_analyze_by_the_keeper_during_the_span_is_reported() -> None:
    before = {"resources": table(), **OFF}
    after = {"resources": table(manual=1, last="2026-12-06T05:38:37.740429+00:00"), **OFF}
    timeline = [("2026-12-06T05:38:28+00:00", "get_user"), ("2026-12-06T05:38:36+00:00", "filter_username")]
    text = describe(before, after, "postgresql", timeline)
    assert "no table had been analyzed" not in text
    assert "resources at 05:38:37 UTC (during filter_username)" in text
    assert "nothing analyzes by itself" not in text


def test_no_analyze_at_all_is_still_said() -> None:
    before = {"resources": table(), **OFF}
    text = describe(before, before, "postgresql")
    assert "no table had been analyzed" in text


def test_autovacuum_analyze_is_still_reported() -> None:
    before = {"resources": table()}
    after = {"resources": table(auto=1, last_auto="2026-12-06T05:38:40+00:00")}
    assert "resources at 05:38:40 UTC" in describe(before, after, "postgresql")
