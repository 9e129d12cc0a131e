"""RFC 7644 section 3.7: parsing a BulkRequest, and finding and replacing `bulkId:` references.

Parsing is strict about the envelope (a malformed envelope fails the whole request) and lenient
per operation: a bad method, path or missing data fails only that operation, so one broken entry
in a 1,000-operation job does not cost the other 999.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provisor.errors import ScimError, invalid_syntax, invalid_value

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PREFIX = "bulkId:"

#: A quoted reference inside a larger string, e.g. a PATCH path `members[value eq "bulkId:q1"]`.
_QUOTED = re.compile(r'"bulkId:([^"]+)"')


@dataclass(frozen=True)
class BulkOperation:
    """One entry of `Operations`. `error` is set when the entry itself is malformed."""

    index: int
    method: str
    bulk_id: str | None
    path: str
    segment: str
    resource_id: str | None
    version: str | None
    data: Any
    references: frozenset[str] = field(default_factory=frozenset)
    error: ScimError | None = None


@dataclass(frozen=True)
class BulkRequest:
    operations: list[BulkOperation]
    fail_on_errors: int | None


def too_large(detail: str) -> ScimError:
    return ScimError(413, detail)


def _get(obj: dict[str, Any], name: str) -> Any:
    """Attribute names are case-insensitive (RFC 7643 section 2.1)."""
    for key, value in obj.items():
        if key.lower() == name.lower():
            return value
    return None


def references_in(value: Any) -> set[str]:
    """Every bulkId referenced anywhere in a JSON value (whole strings or quoted in filters)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.startswith(PREFIX):
                found.add(item[len(PREFIX) :])
            elif '"bulkId:' in item:
                found.update(_QUOTED.findall(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def substitute(value: Any, lookup: Callable[[str], str]) -> Any:
    """A copy of `value` with every bulkId reference replaced by `lookup(bulk_id)`."""
    if isinstance(value, str):
        if value.startswith(PREFIX):
            return lookup(value[len(PREFIX) :])
        if '"bulkId:' in value:
            return _QUOTED.sub(lambda m: f'"{lookup(m.group(1))}"', value)
        return value
    if isinstance(value, dict):
        return {k: substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, lookup) for v in value]
    return value


_DROP = object()


def strip_references(value: Any, bulk_ids: frozenset[str]) -> tuple[Any, bool]:
    """Remove what references `bulk_ids`: list elements and object members that contain one.

    Used to break a reference cycle: the resource is created without the circular references,
    which are put back once every resource of the cycle exists.
    """
    if isinstance(value, str):
        return (_DROP, True) if references_in(value) & bulk_ids else (value, False)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            new, hit = strip_references(item, bulk_ids)
            changed = changed or hit
            if new is not _DROP:
                out[key] = new
        return out, changed
    if isinstance(value, list):
        items: list[Any] = []
        changed = False
        for item in value:
            new, hit = strip_references(item, bulk_ids)
            if hit:
                changed = True
                continue
            items.append(new)
        return items, changed
    return value, False


def _split_path(path: str) -> tuple[str, str | None] | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) == 1:
        return parts[0].lower(), None
    if len(parts) == 2:
        return parts[0].lower(), parts[1]
    return None


def _operation(index: int, raw: Any, segments: frozenset[str]) -> BulkOperation:
    if not isinstance(raw, dict):
        return _broken(index, "", None, "", invalid_syntax("each operation must be a JSON object"))
    method = _get(raw, "method")
    method = method.upper() if isinstance(method, str) else ""
    bulk_id = _get(raw, "bulkId")
    bulk_id = bulk_id if isinstance(bulk_id, str) and bulk_id else None
    path = _get(raw, "path")
    path = path if isinstance(path, str) else ""
    version = _get(raw, "version")
    version = version if isinstance(version, str) and version else None
    data = _get(raw, "data")
    if method not in METHODS:
        return _broken(
            index, method, bulk_id, path, invalid_syntax("method must be POST, PUT, PATCH or DELETE")
        )
    split = _split_path(path)
    if split is None or split[0] not in segments:
        return _broken(index, method, bulk_id, path, invalid_value(f"unknown resource path {path!r}"))
    segment, resource_id = split
    if (method == "POST") != (resource_id is None):
        wanted = (
            "a resource type endpoint, e.g. /Users" if method == "POST" else "a resource, e.g. /Users/{id}"
        )
        return _broken(index, method, bulk_id, path, invalid_value(f"{method} needs a path to {wanted}"))
    if method != "DELETE" and not isinstance(data, dict):
        return _broken(index, method, bulk_id, path, invalid_syntax(f"{method} needs a JSON object in data"))
    refs = references_in(data) if method != "DELETE" else set()
    if resource_id is not None and resource_id.startswith(PREFIX):
        refs.add(resource_id[len(PREFIX) :])
    return BulkOperation(
        index, method, bulk_id, path, segment, resource_id, version, data, frozenset(refs), None
    )


def _broken(index: int, method: str, bulk_id: str | None, path: str, error: ScimError) -> BulkOperation:
    return BulkOperation(index, method, bulk_id, path, "", None, None, None, frozenset(), error)


def parse_bulk_request(body: Any, *, max_operations: int, segments: frozenset[str]) -> BulkRequest:
    """Validate the envelope; `segments` are the lower-cased resource endpoints (`users`, ...)."""
    if not isinstance(body, dict):
        raise invalid_syntax("a BulkRequest must be a JSON object")
    schemas = _get(body, "schemas")
    if not isinstance(schemas, list) or BULK_REQUEST not in schemas:
        raise invalid_syntax(f"schemas must contain {BULK_REQUEST}")
    raw_ops = _get(body, "Operations")
    if not isinstance(raw_ops, list):
        raise invalid_syntax("Operations must be an array")
    if len(raw_ops) > max_operations:
        raise too_large(
            f"The number of operations ({len(raw_ops)}) exceeds the maxOperations ({max_operations})."
        )
    fail_on_errors = _get(body, "failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int) or fail_on_errors < 1
    ):
        raise invalid_value("failOnErrors must be a positive integer")
    operations = [_operation(i, raw, segments) for i, raw in enumerate(raw_ops)]
    seen: set[str] = set()
    for op in operations:
        if op.method == "POST" and op.bulk_id is not None:
            if op.bulk_id in seen:
                raise invalid_value(f"bulkId {op.bulk_id!r} is used by more than one operation")
            seen.add(op.bulk_id)
    return BulkRequest(operations, fail_on_errors)
