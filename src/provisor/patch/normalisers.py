"""IdP PATCH dialects rewritten into RFC 7644 form before the engine runs.

One quirk, one function: each normaliser takes one operation and returns the operations that
replace it (usually one, sometimes none or several). They run as an ordered chain over the whole
list, so later normalisers see the output of earlier ones (e.g. path-less values are already
split into one operation per attribute when `string_booleans` runs). The engine itself stays a
literal RFC implementation; `strict=True` skips the chain entirely.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from provisor.errors import ScimError, mutability
from provisor.filter import resolve_patch_path
from provisor.patch.request import OPS, PatchOperation
from provisor.schema.model import BOOLEAN, Attribute, AttrPath, ResourceType
from provisor.schema.registry import ENTERPRISE_URN, Registry


@dataclass(frozen=True)
class NormaliseContext:
    """What the normalisers may consult: the schema, and the id of the resource being patched."""

    registry: Registry
    rt: ResourceType
    resource_id: str
    #: Paths already resolved for this request: most normalisers look at every operation's path.
    resolved: dict[str, _Resolved | None] = field(default_factory=dict, compare=False, repr=False)
    #: Where the names of ignored unknown keys of path-less values go (None: nobody asked).
    dropped: list[str] | None = field(default=None, compare=False, repr=False)


Normaliser = Callable[[PatchOperation, NormaliseContext], list[PatchOperation]]


@dataclass(frozen=True)
class _Resolved:
    """A path resolved for the normalisers' purposes (None from `_resolve` when it does not bind)."""

    path: AttrPath
    sub: Attribute | None
    filtered: bool

    @property
    def target(self) -> Attribute:
        return self.sub or self.path.target


def _resolve(path: str | None, ctx: NormaliseContext) -> _Resolved | None:
    if path is None:
        return None
    if path in ctx.resolved:
        return ctx.resolved[path]
    found: _Resolved | None = None
    try:
        bound = resolve_patch_path(path, ctx.registry, ctx.rt)
    except ScimError:
        bound = None  # the engine reports it, with the right scimType
    if bound is not None and bound.attr.path is not None:
        sub = bound.attr.path.attribute.sub(bound.sub) if bound.sub else None
        found = _Resolved(bound.attr.path, sub, bound.filter is not None)
    ctx.resolved[path] = found
    return found


def _get(obj: dict[str, Any], name: str) -> Any:
    """A member of a JSON object by case-insensitive name (RFC 7643 section 2.1)."""
    return next((value for key, value in obj.items() if key.lower() == name.lower()), None)


# ---- the normalisers, in chain order --------------------------------------------------------


def op_case(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Entra ID sends `"op": "Add"`/`"Replace"`/`"Remove"` (capitalised by default); others send
    "ADD". The RFC lists lower-case values only."""
    lowered = op.op.lower()
    return [replace(op, op=lowered) if lowered != op.op and lowered in OPS else op]


def okta_pathless_id(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Okta renames a group with a path-less replace whose value repeats `id` (and some clients
    echo `schemas`/`meta`). The resource's own id is dropped; another id is an attempt to change
    a readOnly attribute, so 400 mutability (RFC 7644 section 3.5.2)."""
    if op.path is not None or not isinstance(op.value, dict):
        return [op]
    kept: dict[str, Any] = {}
    for key, value in op.value.items():
        lowered = key.lower()
        if lowered == "id":
            if value is not None and str(value) != ctx.resource_id:
                raise mutability("id is readOnly and cannot be changed")
        elif lowered not in ("schemas", "meta"):
            kept[key] = value
    return [replace(op, value=kept)] if kept else []


def pathless_keys(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Entra ID sends path-less replaces keyed `name.givenName` or
    `urn:...:enterprise:2.0:User:employeeNumber`. A path-less add/replace is, per RFC 7644
    sections 3.5.2.1 and 3.5.2.3, the same as one operation per attribute, so each key becomes its
    own operation with that key as the path. Unknown keys are dropped (IdPs send extras), null
    values are ignored (Entra: "null values are ignored") except for `manager`, where
    `manager_forms` reads null as "remove"."""
    if op.path is not None or op.op == "remove" or not isinstance(op.value, dict):
        return [op]
    out: list[PatchOperation] = []
    for key, value in op.value.items():
        out.extend(_split_key(op.op, key, value, ctx))
    return out


def _split_key(op: str, key: str, value: Any, ctx: NormaliseContext) -> list[PatchOperation]:
    if key.lower() == "schemas":
        return []
    section = next((urn for urn in ctx.rt.schema_ids if urn.lower() == key.lower()), None)
    if section is not None:
        if not isinstance(value, dict):
            return [PatchOperation(op, key, value)] if value is not None else []
        prefix = "" if section == ctx.rt.schema.id else f"{section}:"
        return [out for name, inner in value.items() for out in _split_key(op, f"{prefix}{name}", inner, ctx)]
    try:
        resolved = ctx.registry.resolve(ctx.rt, key)
    except ScimError:
        resolved = None
    if resolved is None:
        if ctx.dropped is not None:
            ctx.dropped.append(key)
        return []
    if value is None and not _is_manager(resolved):
        return []
    return [PatchOperation(op, str(resolved), value)]


def _is_manager(path: AttrPath) -> bool:
    return path.urn == ENTERPRISE_URN and path.attribute.name == "manager" and path.sub_attribute is None


def manager_forms(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Entra ID sends the enterprise manager as `[{"$ref": ..., "value": "id"}]`, `{"value": "id"}`
    or a bare `"id"`, via path `manager` (not a core attribute) or the enterprise URN path; `""`,
    `{"value": ""}` and null mean "no manager". All become `{"value": "id"[, "$ref": ...]}` or a
    remove."""
    if op.path is None:
        return [op]
    path = op.path
    if path.lower() == "manager" and ctx.rt.extension(ENTERPRISE_URN) is not None:
        path = f"{ENTERPRISE_URN}:manager"
    resolved = _resolve(path, ctx)
    if resolved is None or resolved.filtered or not _is_manager(resolved.path):
        return [op]
    if op.op == "remove":
        return [PatchOperation("remove", path)]
    manager = _manager_value(op.value)
    if manager is None:
        return [PatchOperation("remove", path)]
    return [PatchOperation(op.op, path, manager)]


def _manager_value(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str | int):
        value = {"value": value}
    if not isinstance(value, dict):
        return None
    manager_id = _get(value, "value")
    if manager_id is None or (isinstance(manager_id, str) and not manager_id.strip()):
        return None
    out: dict[str, Any] = {"value": str(manager_id)}
    ref = _get(value, "$ref")
    if isinstance(ref, str) and ref:
        out["$ref"] = ref
    return out


def json_string_values(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Entra ID's `AppRoleAssignmentsComplex` (add) and `AssertiveAppRoleAssignmentsComplex`
    (replace) mappings send each role's `value` as a JSON *string* holding
    `{"id", "value", "displayName"}`. It is unpacked into the element: `displayName` becomes
    `display`, the app-role `id` (not a role sub-attribute) is dropped."""
    resolved = _resolve(op.path, ctx)
    if resolved is None or resolved.filtered or resolved.path.sub_attribute is not None:
        return [op]
    attribute = resolved.path.attribute
    if not (attribute.multi_valued and attribute.is_complex) or op.value is None:
        return [op]
    if isinstance(op.value, list):
        return [replace(op, value=[_unpack_element(attribute, item) for item in op.value])]
    return [replace(op, value=_unpack_element(attribute, op.value))]


def _unpack_element(attribute: Attribute, element: Any) -> Any:
    if not isinstance(element, dict):
        return element
    packed = _get(element, "value")
    if not isinstance(packed, str) or not packed.strip().startswith("{"):
        return element
    try:
        inner = json.loads(packed)
    except ValueError:
        return element
    if not isinstance(inner, dict):
        return element
    out = {key: value for key, value in element.items() if key.lower() != "value"}
    for key, value in inner.items():
        name = "display" if key.lower() == "displayname" else key
        sub = attribute.sub(name)
        if sub is not None and key.lower() != "id":
            out[sub.name] = value
    return out


def string_booleans(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Entra ID sends booleans as strings: `"value": "False"` for `active`, `"primary": "True"`
    inside `roles`/`emails` elements and value-path targets. Rewritten to JSON booleans wherever
    the schema says boolean, so value filters built later compare correctly."""
    if op.value is None:
        return [op]
    if op.path is None:
        if not isinstance(op.value, dict):
            return [op]
        return [replace(op, value=_fix_pathless(op.value, ctx))]
    resolved = _resolve(op.path, ctx)
    if resolved is None:
        return [op]
    target = resolved.target
    if resolved.filtered and resolved.sub is None and isinstance(op.value, dict):
        fixed = _fix_complex(target, op.value)
    else:
        fixed = _fix_booleans(target, op.value)
    # Only strings become booleans, and a string never equals a boolean: equal means untouched.
    return [op] if fixed == op.value else [replace(op, value=fixed)]


def _fix_pathless(value: dict[str, Any], ctx: NormaliseContext) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, inner in value.items():
        try:
            resolved = ctx.registry.resolve(ctx.rt, key)
        except ScimError:
            resolved = None
        out[key] = _fix_booleans(resolved.target, inner) if resolved else inner
    return out


def _fix_booleans(attribute: Attribute, value: Any) -> Any:
    if isinstance(value, list) and attribute.multi_valued:
        return [_fix_one(attribute, item) for item in value]
    return _fix_one(attribute, value)


def _fix_one(attribute: Attribute, value: Any) -> Any:
    if attribute.type == BOOLEAN and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if attribute.is_complex and isinstance(value, dict):
        return _fix_complex(attribute, value)
    return value


def _fix_complex(attribute: Attribute, value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, inner in value.items():
        sub = attribute.sub(key)
        out[key] = _fix_booleans(sub, inner) if sub is not None else inner
    return out


def _element_target(op: PatchOperation, ctx: NormaliseContext) -> Attribute | None:
    """The multi-valued complex attribute an add/replace writes whole elements of, if any."""
    if op.op == "remove" or op.value is None:
        return None
    resolved = _resolve(op.path, ctx)
    if resolved is None or resolved.filtered or resolved.path.sub_attribute is not None:
        return None
    attribute = resolved.path.attribute
    return attribute if attribute.multi_valued and attribute.is_complex else None


def bare_values(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Microsoft's SCIM reference collection adds members as `"value": "id"` (a bare string, or a
    list of strings) instead of `[{"value": "id"}]`. For a multi-valued complex attribute with a
    `value` sub-attribute, each bare scalar becomes an element `{"value": scalar}`."""
    attribute = _element_target(op, ctx)
    if attribute is None or attribute.sub("value") is None:
        return [op]
    items = op.value if isinstance(op.value, list) else [op.value]
    if not any(isinstance(item, str | int | float) and not isinstance(item, bool) for item in items):
        return [op]
    wrapped = [
        {"value": item} if isinstance(item, str | int | float) and not isinstance(item, bool) else item
        for item in items
    ]
    return [replace(op, value=wrapped)]


def display_name_alias(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Microsoft's SCIM reference collection names a member's display name `displayName`; the
    RFC 7643 section 2.4 sub-attribute is `display`. Renamed when the attribute has `display` and
    no `displayName` of its own, and the element does not already carry `display`."""
    attribute = _element_target(op, ctx)
    if attribute is None or attribute.sub("display") is None or attribute.sub("displayName") is not None:
        return [op]
    items = op.value if isinstance(op.value, list) else [op.value]
    renamed = [_display_from_alias(item) for item in items]
    if renamed == items:
        return [op]
    return [replace(op, value=renamed if isinstance(op.value, list) else renamed[0])]


def _display_from_alias(item: Any) -> Any:
    if not isinstance(item, dict) or _get(item, "display") is not None:
        return item
    alias = next((key for key in item if key.lower() == "displayname"), None)
    if alias is None:
        return item
    out = {key: value for key, value in item.items() if key != alias}
    out["display"] = item[alias]
    return out


def remove_by_value_array(op: PatchOperation, ctx: NormaliseContext) -> list[PatchOperation]:
    """Entra ID removes group members with `{"op": "Remove", "path": "members", "value":
    [{"value": "id"}]}`. The RFC's form is a value filter, so the listed elements become
    `members[value eq "id1" or value eq "id2"]` (elements without `value` match on all their
    sub-attributes). An empty list removes nothing: this must never become "remove all"."""
    if op.op != "remove" or op.value is None:
        return [op]
    resolved = _resolve(op.path, ctx)
    if resolved is None or resolved.filtered or resolved.path.sub_attribute is not None:
        return [op]
    attribute = resolved.path.attribute
    if not attribute.multi_valued:
        return [replace(op, value=None)]  # removing a single-valued attribute needs no value
    if not attribute.is_complex:
        return [op]  # no filter can name a simple element; the engine rejects the value
    items = op.value if isinstance(op.value, list) else [op.value]
    terms = [term for term in (_element_term(attribute, item) for item in items) if term]
    if not terms:
        return []
    return [PatchOperation("remove", f"{op.path}[{' or '.join(terms)}]")]


def _element_term(attribute: Attribute, element: Any) -> str | None:
    if not isinstance(element, dict):
        return None
    ident = _get(element, "value")
    if isinstance(ident, str | int | float | bool) and ident != "":
        return f"value eq {_literal(ident)}"
    parts = []
    for key, value in element.items():
        sub = attribute.sub(key)
        if sub is not None and not sub.is_complex and isinstance(value, str | int | float | bool):
            parts.append(f"{sub.name} eq {_literal(value)}")
    return f"({' and '.join(parts)})" if parts else None


def _literal(value: str | int | float | bool) -> str:
    return json.dumps(value, ensure_ascii=False)


#: The chain, in order: earlier steps put operations in the shape later steps look for.
CHAIN: tuple[Normaliser, ...] = (
    op_case,
    okta_pathless_id,
    pathless_keys,
    manager_forms,
    json_string_values,
    bare_values,
    display_name_alias,
    string_booleans,
    remove_by_value_array,
)


def normalise(
    operations: Sequence[PatchOperation], ctx: NormaliseContext, *, strict: bool = False
) -> tuple[PatchOperation, ...]:
    """Rewrite IdP dialects into RFC form; with `strict` the operations pass through untouched."""
    ops = list(operations)
    if strict:
        return tuple(ops)
    for step in CHAIN:
        ops = [out for op in ops for out in step(op, ctx)]
    return tuple(ops)


__all__ = [
    "CHAIN",
    "NormaliseContext",
    "Normaliser",
    "bare_values",
    "display_name_alias",
    "json_string_values",
    "manager_forms",
    "normalise",
    "okta_pathless_id",
    "op_case",
    "pathless_keys",
    "remove_by_value_array",
    "string_booleans",
]
