"""What a user write granted and revoked in `entitlements` and `roles` (docs/entitlements.md).

An IdP's governance assigns entitlements and roles through these two multi-valued attributes; the
app reacting to the change feed should not have to diff whole documents to see them. A user event
whose write changed either attribute carries `assignmentChanges` beside the resource. The cost for
users without assignments is two dictionary lookups per write.
"""

from __future__ import annotations

from typing import Any

ASSIGNMENT_ATTRIBUTES = ("entitlements", "roles")
CHANGES_KEY = "assignmentChanges"


def _key(item: Any) -> tuple[Any, Any]:
    """An assignment is its `value` and `type`; `display` and `primary` only describe it."""
    if isinstance(item, dict):
        return item.get("value"), item.get("type")
    return item, None


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def assignment_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any] | None:
    """`{"entitlements": {"granted": [...], "revoked": [...]}, "roles": {...}}`, only for what changed;
    None when nothing was granted or revoked."""
    out: dict[str, Any] = {}
    for name in ASSIGNMENT_ATTRIBUTES:
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        old_items, new_items = _items(old), _items(new)
        old_keys = {_key(item) for item in old_items}
        new_keys = {_key(item) for item in new_items}
        granted = [item for item in new_items if _key(item) not in old_keys]
        revoked = [item for item in old_items if _key(item) not in new_keys]
        if granted or revoked:
            out[name] = {"granted": granted, "revoked": revoked}
    return out or None
