"""PATCH operations on write-only attributes (the User's `password`), taken out before the engine.

Okta's "Sync password" sends `{"op": "replace", "value": {"password": "..."}}`, custom apps
`{"op": "replace", "path": "password", "value": "..."}`, Entra "Replace". The stored document never
holds a write-only attribute, so such an operation changes nothing stored: it is accepted in any
op case and form (path, URN-qualified path, path-less value, schema section), in strict mode too,
and its value is handed back to the caller for the `on_password` hook. What remains of the request
goes through the normalisers and the engine as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from provisor.patch.request import PatchOperation
from provisor.schema.write_only import WriteOnly

_WRITES = frozenset({"add", "replace"})


def split_write_only(
    operations: Sequence[PatchOperation], write_only: WriteOnly
) -> tuple[tuple[PatchOperation, ...], dict[str, Any]]:
    """The operations without their write-only parts, and the values they set (None: removed).

    Later operations win, as they would if the values were stored.
    """
    if not write_only.names:
        return tuple(operations), {}
    kept: list[PatchOperation] = []
    values: dict[str, Any] = {}
    for operation in operations:
        verb = operation.op.strip().lower()
        if operation.path is not None:
            resolved = write_only.resolve(operation.path)
            if resolved is not None and verb == "remove":
                values[resolved[0]] = None
                continue
            if resolved is not None and verb in _WRITES:
                values[resolved[0]] = write_only.value(resolved, operation.value)
                continue
            prefix = write_only.section(operation.path)
            if prefix is None or verb not in _WRITES or not isinstance(operation.value, dict):
                kept.append(operation)
                continue
            rest, found = write_only.split_object(operation.value, prefix)
        elif verb in _WRITES and isinstance(operation.value, dict):
            rest, found = write_only.split_object(operation.value)
        else:
            kept.append(operation)
            continue
        values.update(found)
        if not found:
            kept.append(operation)
        elif rest:
            kept.append(replace(operation, value=rest))
    return tuple(kept), values


__all__ = ["split_write_only"]
