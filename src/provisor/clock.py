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
    return format_instant(datetime.now(UTC))
