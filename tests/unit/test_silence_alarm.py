"""The overview's silence alarm rule (service/console.py), on synthetic write histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from provisor.clock import format_instant
from provisor.service.console import MIN_SILENCE, silence

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _history(last_write_ago: float, cadence: float, cycles: int, burst: int = 5) -> list[str]:
    """Newest first: `cycles` bursts of `burst` writes one second apart, `cadence` seconds apart."""
    times = []
    for cycle in range(cycles):
        start = NOW - timedelta(seconds=last_write_ago + cycle * cadence)
        times.extend(format_instant(start - timedelta(seconds=i)) for i in range(burst))
    return times


def test_a_tenant_inside_its_cadence_is_quiet() -> None:
    result = silence(_history(last_write_ago=600, cadence=2400, cycles=6), NOW)
    assert not result.alarm and result.cadence_seconds is not None
    assert abs(result.cadence_seconds - 2396) < 10  # the pause between bursts, not within them


def test_a_tenant_silent_for_three_cadences_raises_the_alarm() -> None:
    assert silence(_history(last_write_ago=3 * 2400 + 60, cadence=2400, cycles=6), NOW).alarm
    assert not silence(_history(last_write_ago=3 * 2400 - 60, cadence=2400, cycles=6), NOW).alarm


def test_a_fast_cadence_still_waits_the_minimum_silence() -> None:
    assert not silence(_history(last_write_ago=MIN_SILENCE - 10, cadence=120, cycles=8), NOW).alarm
    assert silence(_history(last_write_ago=MIN_SILENCE + 10, cadence=120, cycles=8), NOW).alarm


def test_without_a_regular_history_there_is_no_alarm() -> None:
    assert not silence([], NOW).alarm
    one_burst = _history(last_write_ago=86400 * 30, cadence=2400, cycles=1, burst=20)
    assert not silence(one_burst, NOW).alarm
    two_cycles = _history(last_write_ago=86400 * 30, cadence=2400, cycles=3)
    assert not silence(two_cycles, NOW).alarm  # two pauses are not a cadence yet
