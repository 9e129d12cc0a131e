"""clock.now(): the stored timestamp format, from a cached per-second prefix."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from provisor import clock

FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def reference(nanos: int) -> str:
    """The same instant through datetime (what `now()` replaced)."""
    moment = datetime.fromtimestamp(nanos // 1000 / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize(
    "nanos",
    [
        1_764_670_000_000_000_000,  # an exact second: .000000
        1_764_670_000_000_999_999,  # below a microsecond is cut, not rounded
        1_764_670_000_123_456_789,
        1_764_670_059_999_999_999,  # the last microsecond of a minute
        1_767_225_599_999_999_000,  # the last microsecond of 2025
        1_767_225_600_000_001_000,  # the first of 2026
    ],
)
def test_now_formats_the_instant_as_datetime_would(monkeypatch: pytest.MonkeyPatch, nanos: int) -> None:
    monkeypatch.setattr(clock.time, "time_ns", lambda: nanos)
    assert clock.now() == reference(nanos)


def test_the_cached_second_is_replaced_when_the_second_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter([1_764_670_000_900_000_000, 1_764_670_000_950_000_000, 1_764_670_001_000_000_000])
    monkeypatch.setattr(clock.time, "time_ns", lambda: next(ticks))
    assert clock.now() == "2025-12-02T10:06:40.900000Z"
    assert clock.now() == "2025-12-02T10:06:40.950000Z"
    assert clock.now() == "2025-12-02T10:06:41.000000Z"


def test_now_is_current_and_ordered() -> None:
    before = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stamps = [clock.now() for _ in range(1000)]
    time.sleep(0.001)
    after = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert all(FORMAT.match(s) for s in stamps)
    assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= after
