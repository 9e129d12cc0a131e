"""Parse a PatchOp request body (RFC 7644 section 3.5.2) into plain immutable values.

Parsing checks only the message *structure*; the `op` value is validated by the engine after
the IdP normalisers ran, because Entra's "Add"/"Replace" must survive parsing to be rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisor.errors import ScimError, invalid_syntax

PATCH_OP_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
OPS = frozenset({"add", "replace", "remove"})
DEFAULT_MAX_OPERATIONS = 1000


@dataclass(frozen=True)
class PatchOperation:
    """One element of `Operations`; `value` is None when absent (JSON null means absent too)."""

    op: str
    path: str | None = None
    value: Any = None


@dataclass(frozen=True)
class PatchRequest:
    operations: tuple[PatchOperation, ...]


def parse_patch_request(body: Any, *, max_operations: int = DEFAULT_MAX_OPERATIONS) -> PatchRequest:
    """Validate the PatchOp envelope and return its operations in order.

    Member names match case-insensitively (RFC 7643 section 2.1: attribute names are case
    insensitive), so `operations` and `Op` are accepted. More than `max_operations` operations
    is 413 Payload Too Large, the status RFC 7644 section 3.7.4 uses for a Bulk request over
    `maxOperations`: the request is well-formed, just bigger than this server accepts.
    """
    if not isinstance(body, dict):
        raise invalid_syntax("the PATCH body must be a JSON object")
    members = {key.lower(): value for key, value in body.items() if isinstance(key, str)}
    _check_schemas(members.get("schemas"))
    raw_ops = members.get("operations")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise invalid_syntax("'Operations' must be a non-empty list of operations")
    if len(raw_ops) > max_operations:
        raise ScimError(413, f"a PATCH request may carry at most {max_operations} operations")
    return PatchRequest(tuple(_parse_operation(index, raw) for index, raw in enumerate(raw_ops)))


def _check_schemas(schemas: Any) -> None:
    """RFC 7644 section 3.5.2: the body's `schemas` must contain the PatchOp message URN."""
    if not isinstance(schemas, list) or not any(
        isinstance(urn, str) and urn.lower() == PATCH_OP_URN.lower() for urn in schemas
    ):
        raise invalid_syntax(f"'schemas' must contain {PATCH_OP_URN!r}")


def _parse_operation(index: int, raw: Any) -> PatchOperation:
    where = f"Operations[{index}]"
    if not isinstance(raw, dict):
        raise invalid_syntax(f"{where} must be an object")
    members = {key.lower(): value for key, value in raw.items() if isinstance(key, str)}
    op = members.get("op")
    if not isinstance(op, str) or not op.strip():
        raise invalid_syntax(f"{where}.op must be one of add, replace, remove")
    path = members.get("path")
    if path is not None and not isinstance(path, str):
        raise invalid_syntax(f"{where}.path must be a string")
    if isinstance(path, str) and not path.strip():
        path = None
    return PatchOperation(op.strip(), path.strip() if path else None, members.get("value"))


def check_op(operation: PatchOperation) -> None:
    """RFC 7644 section 3.5.2: `op` MUST be one of "add", "remove" or "replace"."""
    if operation.op not in OPS:
        raise invalid_syntax(f"unknown PATCH op {operation.op!r}; expected add, replace or remove")


__all__ = [
    "DEFAULT_MAX_OPERATIONS",
    "OPS",
    "PATCH_OP_URN",
    "PatchOperation",
    "PatchRequest",
    "check_op",
    "parse_patch_request",
]
