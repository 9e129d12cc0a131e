"""SCIM PATCH: parse a PatchOp, rewrite IdP dialects into RFC form, apply it all-or-nothing."""

from provisor.patch.engine import MemberDelta, PatchOptions, PatchResult, apply_patch
from provisor.patch.normalisers import NormaliseContext, normalise
from provisor.patch.pipeline import apply_operations, patch_document
from provisor.patch.request import (
    DEFAULT_MAX_OPERATIONS,
    PATCH_OP_URN,
    PatchOperation,
    PatchRequest,
    parse_patch_request,
)

__all__ = [
    "DEFAULT_MAX_OPERATIONS",
    "PATCH_OP_URN",
    "MemberDelta",
    "NormaliseContext",
    "PatchOperation",
    "PatchOptions",
    "PatchRequest",
    "PatchResult",
    "apply_operations",
    "apply_patch",
    "normalise",
    "parse_patch_request",
    "patch_document",
]
