"""The whole PATCH pipeline in one call: parse the body, normalise IdP dialects, apply."""

from __future__ import annotations

from typing import Any

from provisor.patch.engine import Doc, LoadMembers, PatchOptions, PatchResult, apply_patch
from provisor.patch.normalisers import NormaliseContext, normalise
from provisor.patch.request import DEFAULT_MAX_OPERATIONS, parse_patch_request
from provisor.schema.model import ResourceType
from provisor.schema.registry import Registry


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
    """What the service calls for `PATCH /{type}/{id}`; raises ScimError, stores nothing itself."""
    opts = options or PatchOptions()
    request = parse_patch_request(body, max_operations=max_operations)
    ops = normalise(request.operations, NormaliseContext(registry, rt, resource_id), strict=opts.strict)
    return apply_patch(
        registry, rt, doc, ops, resource_id=resource_id, options=opts, load_members=load_members
    )


__all__ = ["patch_document"]
