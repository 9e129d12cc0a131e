"""Durations as operators type them (`30d`, `12h`, `15m`, `90s`), in CLI flags and console forms."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """A ValueError names the text and the accepted form."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r}: use a number and a unit, e.g. 30d, 12h, 15m")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
