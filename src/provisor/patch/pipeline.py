"""The whole PATCH pipeline: parse the body, normalise IdP dialects, apply.

The service runs exactly these steps: `parse_patch_request` once per request (it then takes the
write-only operations out, patch/write_only.py, before reading the resource), and
`apply_operations` on the stored document, on every attempt of its read-apply-write. The unit
tests call `patch_document`, which is those two calls back to back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from provisor.patch.engine import Doc, LoadMembers, PatchOptions, PatchResult, apply_patch
from provisor.patch.normalisers import NormaliseContext, normalise
from provisor.patch.request import DEFAULT_MAX_OPERATIONS, PatchOperation, parse_patch_request
from provisor.schema.model import ResourceType
from provisor.schema.registry import Registry


def apply_operations(
    registry: Registry,
    rt: ResourceType,
    doc: Doc,
    operations: Sequence[PatchOperation],
    *,
    resource_id: str,
    options: PatchOptions | None = None,
    load_members: LoadMembers | None = None,
    dropped: list[str] | None = None,
) -> PatchResult:
    """Parsed operations, IdP dialects rewritten to RFC form (unless strict), applied to `doc`.
    `dropped` collects unknown attributes a lenient tenant ignores."""
    opts = options or PatchOptions()
    context = NormaliseContext(registry, rt, resource_id, dropped=dropped)
    return apply_patch(
        registry,
        rt,
        doc,
        normalise(operations, context, strict=opts.strict),
        resource_id=resource_id,
        options=opts,
        load_members=load_members,
        dropped=dropped,
    )


def patch_document(
    registry: Registry,
    rt: ResourceType,
    doc: Doc,
    body: Any,
    *,
    resource_id: str,
    options: PatchOptions | None = None,
    load_members: LoadMembers | None = None,
    max_operations: int = DEFAULT_MAX_OPERATIONS,
) -> PatchResult:
    """What the service does for `PATCH /{type}/{id}`; raises ScimError, stores nothing itself."""
    request = parse_patch_request(body, max_operations=max_operations)
    return apply_operations(
        registry,
        rt,
        doc,
        request.operations,
        resource_id=resource_id,
        options=options,
        load_members=load_members,
    )


__all__ = ["apply_operations", "patch_document"]
