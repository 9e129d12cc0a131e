"""Timestamps in the one format Provisor stores and returns.

Fixed-width UTC (`2026-11-28T09:40:08.123456Z`) compares as an instant with plain string
comparison, which keeps SQL filters, sorting and cursors identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_instant(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    """The current instant; `isoformat` is several times cheaper than `strftime`, and for the
    current time (a four-digit year, UTC) it gives the same fixed-width text."""
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
