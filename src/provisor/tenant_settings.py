"""The per-tenant settings `provisor tenant set` accepts, and their validation.

Values arrive as `key=value` strings; a value is parsed as JSON when it is valid JSON (`true`,
`5`, `"full"`), else taken as a plain string. `null` removes the key (back to the default).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from provisor.config import REQUEST_LOG_MODES


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("must be true or false")


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be an integer >= 1")
    return value


def _rate(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError("must be a number >= 0 (0 turns the limit off)")
    return value


def _burst(value: Any) -> float | int:
    number = _rate(value)
    if 0 < number < 1:
        raise ValueError("must be 0 (one second's worth) or >= 1")
    return number


def _log_mode(value: Any) -> str:
    if value not in REQUEST_LOG_MODES:
        raise ValueError(f"must be one of {', '.join(REQUEST_LOG_MODES)}")
    return str(value)


#: What DELETE does (docs/delete-policy.md): remove at once, or keep a restorable tombstone.
DELETE_POLICIES = ("hard", "tombstone")
#: Longest tombstone retention: ten years, far beyond any IdP's re-provisioning window.
MAX_TOMBSTONE_DAYS = 3650


def _delete_policy(value: Any) -> str:
    if value not in DELETE_POLICIES:
        raise ValueError(f"must be one of {', '.join(DELETE_POLICIES)}")
    return str(value)


def _tombstone_days(value: Any) -> int:
    days = _positive_int(value)
    if days > MAX_TOMBSTONE_DAYS:
        raise ValueError(f"must be at most {MAX_TOMBSTONE_DAYS}")
    return days


VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "strict_patch": _boolean,
    "allow_duplicate_group_names": _boolean,
    "ignore_unknown_members": _boolean,
    "indirect_groups": _boolean,
    "patch_204_users": _boolean,
    "patch_204_groups": _boolean,
    "default_page_size": _positive_int,
    "max_page_size": _positive_int,
    "rate_limit_per_second": _rate,
    "rate_limit_burst": _burst,
    "request_log": _log_mode,
    "deprovision_ack_threshold_seconds": _positive_int,
    "delete_policy": _delete_policy,
    "tombstone_days": _tombstone_days,
}


def parse_value(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`["key=value", ...]` -> validated settings changes (None values mean "remove")."""
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{pair!r}: use key=value")
        if key not in VALIDATORS:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(sorted(VALIDATORS))}")
        value = parse_value(raw.strip())
        try:
            changes[key] = None if value is None else VALIDATORS[key](value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return changes
