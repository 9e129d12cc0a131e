"""bench/reclaim.py finds a running DAMON `pageout` scheme in sysfs and says when it evicts; it
says nothing for a kdamond that is off, another action, or no DAMON at all."""

from __future__ import annotations

from pathlib import Path

from bench.reclaim import line, pageout_schemes


def _write(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def _kdamond(root: Path, index: int, *, state: str, action: str) -> None:
    kdamond = root / str(index)
    _write(kdamond / "state", state)
    context = kdamond / "contexts" / "0"
    _write(context / "monitoring_attrs" / "intervals" / "aggr_us", "5000000")
    scheme = context / "schemes" / "0"
    _write(scheme / "action", action)
    _write(scheme / "access_pattern" / "age" / "min", "12")
    _write(scheme / "quotas" / "bytes", "134217728")
    _write(scheme / "quotas" / "reset_interval_ms", "1000")


def test_a_running_pageout_scheme_is_named_with_its_idle_time_and_quota(tmp_path: Path) -> None:
    _kdamond(tmp_path, 0, state="on", action="pageout")
    schemes = pageout_schemes(tmp_path)
    assert schemes == [{"idle_s": 60.0, "mib_per_s": 128.0}]
    assert "DAMON pageout: idle for 60 s, up to 128 MiB/s" in line(schemes)


def test_an_idle_kdamond_another_action_or_no_damon_says_nothing(tmp_path: Path) -> None:
    _kdamond(tmp_path, 0, state="off", action="pageout")
    _kdamond(tmp_path, 1, state="on", action="stat")
    assert pageout_schemes(tmp_path) == []
    assert pageout_schemes(tmp_path / "missing") == []
    assert line([]) == ""
