"""The RFC 7644 section 3.5.2 PATCH engine: applies RFC-form operations to a stored document.

The engine knows only the RFC; IdP dialects are rewritten beforehand by `normalisers`. It works
on a deep copy and raises ScimError on the first failing operation, so the caller either gets a
complete new document or stores nothing (section 3.5.2: "SHALL be treated as atomic").

Group `members` are never edited as a list here: they live in their own table, so the engine
returns a `MemberDelta` that the service applies in O(changes), not O(group size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from provisor.errors import ScimError, invalid_path, invalid_value, mutability, no_target
from provisor.filter import matches_element, resolve_patch_path
from provisor.filter.ast import And, Attr, Compare, Filter, Or
from provisor.patch.request import PatchOperation, check_op
from provisor.schema.coerce import coerce_attribute, coerce_value, is_empty
from provisor.schema.model import Attribute, AttrPath, ResourceType, Schema
from provisor.schema.registry import GROUP_URN, Registry

Doc = dict[str, Any]
LoadMembers = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class PatchOptions:
    """`strict`: pure RFC (unknown keys in path-less values are 400 invalidPath, a filtered
    remove matching nothing is 400 noTarget). `create_missing_on_value_path`: a value-path
    add/replace matching no element creates it from the filter's `eq` terms (what Entra expects
    for `emails[type eq "work"].value`) instead of failing with noTarget."""

    strict: bool = False
    create_missing_on_value_path: bool = True


@dataclass(frozen=True)
class MemberDelta:
    """Membership changes, folded so the service can apply them in this order without conflicts:
    clear all (`remove_all`) or set exactly (`replace_all`), then insert `add`, then delete
    `remove_ids`. `add` and `remove_ids` never share an id."""

    replace_all: list[dict[str, Any]] | None = None
    add: list[dict[str, Any]] = field(default_factory=list)
    remove_ids: set[str] = field(default_factory=set)
    remove_all: bool = False

    @property
    def is_empty(self) -> bool:
        return self.replace_all is None and not self.add and not self.remove_ids and not self.remove_all


@dataclass(frozen=True)
class PatchResult:
    doc: Doc
    changed: bool
    members: MemberDelta | None


@dataclass(frozen=True)
class _Target:
    """A resolved path: where (`urn` section, `attribute`), which elements, which sub-attribute."""

    text: str
    urn: str | None
    attribute: Attribute
    filter: Filter | None = None
    sub: Attribute | None = None


def apply_patch(
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
    """Apply `operations` in order to a copy of `doc`; the input is never modified.

    Unknown attributes that are ignored (leniently) are named in `dropped` (schema/coerce.py)."""
    # `_pruned` rebuilds every dict and list, so it is the copy (a stored document is JSON and
    # already pruned, so nothing else changes); it costs half of `copy.deepcopy`.
    patcher = _Patcher(registry, rt, _pruned_doc(doc), options or PatchOptions(), load_members, dropped)
    for operation in operations:
        patcher.apply(operation)
    _check_required_kept(rt, doc, patcher.doc)
    delta = patcher.members.result() if patcher.members.touched else None
    changed = patcher.doc != doc or (delta is not None and not delta.is_empty)
    return PatchResult(patcher.doc, changed, delta)


# ---- membership delta -----------------------------------------------------------------------


class _MemberChanges:
    """Accumulates member operations in request order, folding each into the previous ones."""

    def __init__(self) -> None:
        self.touched = False
        self.base: list[dict[str, Any]] | None = None  # set exactly (replace or clear)
        self.cleared = False
        self.add: dict[str, dict[str, Any]] = {}
        self.remove_ids: set[str] = set()

    def replace(self, members: list[dict[str, Any]]) -> None:
        self.touched = True
        self.base, self.cleared = _unique_members(members), False
        self.add, self.remove_ids = {}, set()

    def clear(self) -> None:
        self.touched = True
        self.base, self.cleared = None, True
        self.add, self.remove_ids = {}, set()

    def insert(self, members: list[dict[str, Any]]) -> None:
        self.touched = True
        for member in members:
            member_id = member["value"]
            self.remove_ids.discard(member_id)
            if self.base is not None:
                if all(m["value"] != member_id for m in self.base):
                    self.base.append(member)
            else:
                self.add.setdefault(member_id, member)

    def delete(self, ids: set[str]) -> None:
        self.touched = True
        for member_id in ids:
            self.add.pop(member_id, None)
            if self.base is not None:
                self.base = [m for m in self.base if m["value"] != member_id]
            elif not self.cleared:
                self.remove_ids.add(member_id)

    def current(self, load_members: LoadMembers | None) -> list[dict[str, Any]]:
        """Members as they stand after the operations so far (loads the table only if needed)."""
        if self.base is not None:
            return list(self.base)
        if self.cleared:
            return list(self.add.values())
        if load_members is None:
            raise ScimError(
                400, "this members filter needs the member list, which is unavailable", "invalidFilter"
            )
        stored = [m for m in load_members() if m.get("value") not in self.remove_ids]
        known = {m.get("value") for m in stored}
        return stored + [m for m in self.add.values() if m["value"] not in known]

    def result(self) -> MemberDelta:
        if self.base is not None:
            return MemberDelta(replace_all=self.base)
        return MemberDelta(None, list(self.add.values()), set(self.remove_ids), self.cleared)


def _unique_members(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for member in members:
        seen.setdefault(member["value"], member)
    return list(seen.values())


# ---- the patcher ----------------------------------------------------------------------------


class _Patcher:
    def __init__(
        self,
        registry: Registry,
        rt: ResourceType,
        doc: Doc,
        options: PatchOptions,
        load_members: LoadMembers | None,
        dropped: list[str] | None = None,
    ) -> None:
        self.dropped = dropped
        self.registry = registry
        self.rt = rt
        self.doc = doc
        self.options = options
        self.load_members = load_members
        self.members = _MemberChanges()
        #: Top-level keys (core attribute names, extension URNs) the current operation wrote.
        self.touched: set[str] = set()

    # ---- dispatch -------------------------------------------------------------------------

    def apply(self, operation: PatchOperation) -> None:
        check_op(operation)
        self.touched = set()
        if operation.path is None:
            self._apply_pathless(operation)
        else:
            self._apply_path(operation, operation.path)
        self.prune_touched()

    def prune_touched(self) -> None:
        """Drop the empty values the operation left. The document was pruned before it, and an
        operation only writes under the top-level keys it marks, so only those are walked."""
        for key in self.touched:
            if key in self.doc:
                kept = _pruned(self.doc[key])
                if is_empty(kept):
                    del self.doc[key]
                else:
                    self.doc[key] = kept

    def _touch(self, target: _Target) -> None:
        self.touched.add(target.urn if target.urn is not None else target.attribute.name)

    def _apply_pathless(self, operation: PatchOperation) -> None:
        """Section 3.5.2.1/3.5.2.3: no path means the value is a set of attributes of the resource."""
        if operation.op == "remove":
            raise no_target("a remove operation needs a path")
        if not isinstance(operation.value, dict):
            raise invalid_value(f"a path-less {operation.op} needs an object of attributes as its value")
        for key, value in operation.value.items():
            self._apply_pathless_key(operation.op, key, value)

    def _apply_pathless_key(self, op: str, key: str, value: Any) -> None:
        if key.lower() == "schemas":
            return
        section_urn = self._section_urn(key)
        if section_urn is not None:
            self._apply_section(op, section_urn, key, value)
            return
        try:
            resolved = self.registry.resolve(self.rt, key)
        except ScimError:
            resolved = None
        if resolved is None:
            if self.options.strict:
                raise invalid_path(f"unknown attribute {key!r}")
            if self.dropped is not None:
                self.dropped.append(key)
            return  # lenient: IdPs send keys this server does not model
        target = _Target(key, resolved.urn, resolved.attribute, None, resolved.sub_attribute)
        if value is None:  # RFC 7643 section 2.5: null is the same as unassigned
            if op == "replace":
                self._remove(target, None)
            return
        self._write(op, target, value)

    def _apply_section(self, op: str, urn: str, key: str, value: Any) -> None:
        """A whole schema section as a key (`"urn:...:enterprise:2.0:User": {...}`)."""
        if value is None:
            return
        if not isinstance(value, dict):
            raise invalid_value(f"{key} must be an object of attributes")
        prefix = "" if urn == self.rt.schema.id else f"{urn}:"
        for name, inner in value.items():
            self._apply_pathless_key(op, f"{prefix}{name}", inner)

    def _apply_path(self, operation: PatchOperation, path: str) -> None:
        section_urn = self._section_urn(path)
        if section_urn is not None:
            self._apply_section_path(operation, section_urn)
            return
        target = self._resolve(path)
        if operation.op == "remove":
            self._remove(target, operation.value)
            return
        if operation.value is None:
            raise invalid_value(f"{operation.op} on {path!r} needs a value")
        self._write(operation.op, target, operation.value)

    def _apply_section_path(self, operation: PatchOperation, urn: str) -> None:
        if operation.op == "remove":
            if urn != self.rt.schema.id:
                self.doc.pop(urn, None)
                return
            raise no_target("cannot remove the core schema")
        self._apply_section(operation.op, urn, urn, operation.value)

    def _section_urn(self, text: str) -> str | None:
        """The canonical schema URN when `text` names a whole schema of this resource type."""
        if not text.lower().startswith("urn:"):
            return None
        for urn in self.rt.schema_ids:
            if urn.lower() == text.lower():
                return urn
        return None

    def _resolve(self, text: str) -> _Target:
        bound = resolve_patch_path(text, self.registry, self.rt)
        resolved: AttrPath | None = bound.attr.path
        if resolved is None:
            raise invalid_path(f'invalid PATCH path "{text}": unknown attribute')
        sub = resolved.sub_attribute
        if bound.sub is not None:
            if sub is not None:
                raise invalid_path(f'invalid PATCH path "{text}": it names a sub-attribute twice')
            sub = resolved.attribute.sub(bound.sub)
            if sub is None:
                raise invalid_path(f'invalid PATCH path "{text}": unknown sub-attribute')
        multi_complex = resolved.attribute.multi_valued and resolved.attribute.is_complex
        if bound.filter is not None and not multi_complex:
            raise invalid_path(
                f'invalid PATCH path "{text}": a value filter needs a multi-valued complex attribute'
            )
        return _Target(text, resolved.urn, resolved.attribute, bound.filter, sub)

    # ---- checks ---------------------------------------------------------------------------

    def _check_writable(self, target: _Target) -> None:
        """Section 3.5.2: "a client MUST NOT modify an attribute that has mutability readOnly"."""
        if target.attribute.read_only or (target.sub is not None and target.sub.read_only):
            raise mutability(f"{target.text} is readOnly")

    def _is_members(self, target: _Target) -> bool:
        return self.rt.schema.id == GROUP_URN and target.urn is None and target.attribute.name == "members"

    def _section(self, urn: str | None) -> Doc:
        if urn is None:
            return self.doc
        section = self.doc.get(urn)
        if not isinstance(section, dict):
            section = self.doc[urn] = {}
        return section

    # ---- add / replace --------------------------------------------------------------------

    def _write(self, op: str, target: _Target, value: Any) -> None:
        self._check_writable(target)
        self._touch(target)
        if self._is_members(target):
            self._write_members(op, target, value)
        elif target.filter is not None:
            self._write_matching(op, target, value)
        elif target.sub is not None:
            self._write_sub(op, target, value)
        elif target.attribute.multi_valued:
            self._write_multi(op, target, value)
        else:
            self._write_single(op, target, value)

    def _write_single(self, op: str, target: _Target, value: Any) -> None:
        """Single-valued: add/replace set the value; a complex value merges sub-attributes
        (section 3.5.2.3: "Sub-attributes that are not specified ... are left unchanged")."""
        attribute, section = target.attribute, self._section(target.urn)
        new = coerce_value(attribute, value, target.text, self.dropped)
        old = section.get(attribute.name)
        if new is None:
            if op == "replace":
                self._check_mutable(attribute, old, None, target.text)
                section.pop(attribute.name, None)
            return
        if attribute.is_complex and isinstance(old, dict):
            for sub in attribute.sub_attributes:
                if sub.name in new:
                    self._check_mutable(sub, old.get(sub.name), new[sub.name], f"{target.text}.{sub.name}")
            new = {**old, **new}
        self._check_mutable(attribute, old, new, target.text)
        section[attribute.name] = new

    def _write_multi(self, op: str, target: _Target, value: Any) -> None:
        """Add appends values not already present; replace (no filter) replaces the whole list."""
        attribute, section = target.attribute, self._section(target.urn)
        new = coerce_attribute(attribute, value, target.text, self.dropped) or []
        old = list(section.get(attribute.name) or [])
        if op == "replace":
            self._check_mutable(attribute, old or None, new or None, target.text)
            section[attribute.name] = new
            _single_primary(new, new)
            return
        added = [element for element in new if element not in old]
        if added and old and attribute.mutability == "immutable":
            raise mutability(f"{target.text} is immutable and already has values")
        for element in added:
            if element not in old:
                old.append(element)
        section[attribute.name] = old
        _single_primary(old, added)

    def _write_sub(self, op: str, target: _Target, value: Any) -> None:
        """`name.givenName`, or `emails.value` (no filter: every element, or a new one if none)."""
        attribute, sub, section = target.attribute, target.sub, self._section(target.urn)
        assert sub is not None
        new = coerce_attribute(sub, value, target.text)
        if new is None and op == "add":
            return
        if not attribute.multi_valued:
            holder = section.get(attribute.name)
            holder = dict(holder) if isinstance(holder, dict) else {}
            self._check_mutable(sub, holder.get(sub.name), new, target.text)
            _assign(holder, sub.name, new)
            section[attribute.name] = holder
            return
        elements = list(section.get(attribute.name) or [])
        if not elements:
            elements = [{}]
        for element in elements:
            self._check_mutable(sub, element.get(sub.name), new, target.text)
            _assign(element, sub.name, new)
        section[attribute.name] = elements
        _single_primary(elements, elements)

    def _write_matching(self, op: str, target: _Target, value: Any) -> None:
        """Section 3.5.2.3: a value path updates every matching element (or its sub-attribute)."""
        attribute, sub, section = target.attribute, target.sub, self._section(target.urn)
        assert target.filter is not None
        if sub is not None:
            new: Any = coerce_attribute(sub, value, target.text)
        else:
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            new = coerce_value(attribute, value, target.text, self.dropped)
        elements = list(section.get(attribute.name) or [])
        matched = [element for element in elements if matches_element(target.filter, element)]
        if not matched:
            if new is None:
                return
            created = self._element_from_filter(target)
            elements.append(created)
            matched = [created]
        for element in matched:
            if sub is not None:
                self._check_mutable(sub, element.get(sub.name), new, target.text)
                _assign(element, sub.name, new)
            elif new is None:
                if op == "replace":
                    element.clear()  # replaced by nothing: the element is unassigned
            else:
                for name, sub_value in new.items():
                    sub_attr = attribute.sub(name)
                    if sub_attr is not None:
                        self._check_mutable(sub_attr, element.get(name), sub_value, f"{target.text}.{name}")
                element.update(new)
        section[attribute.name] = elements
        _single_primary(elements, matched)

    def _element_from_filter(self, target: _Target) -> dict[str, Any]:
        """An element built from the filter's `eq` terms, when the options allow creating one."""
        assert target.filter is not None
        terms = _eq_terms(target.filter) if self.options.create_missing_on_value_path else None
        if terms is None:
            raise no_target(f"no value matches {target.text!r}")
        element: dict[str, Any] = {}
        for sub, literal in terms:
            coerced = coerce_value(sub, _plain(literal), target.text)
            if coerced is not None:
                element[sub.name] = coerced
        return element

    def _check_mutable(self, attribute: Attribute, old: Any, new: Any, where: str) -> None:
        """RFC 7644 section 3.5.2: an immutable attribute may only be added when it had no value."""
        if attribute.mutability == "immutable" and not is_empty(old) and old != new:
            raise mutability(f"{where} is immutable")

    # ---- remove ---------------------------------------------------------------------------

    def _remove(self, target: _Target, value: Any) -> None:
        """Section 3.5.2.2 remove: the attribute, the matching elements, or their sub-attribute."""
        self._check_writable(target)
        self._touch(target)
        if self._is_members(target):
            self._remove_members(target, value)
            return
        attribute = target.attribute
        if value is not None and attribute.multi_valued and target.filter is None and target.sub is None:
            # Never let an (un-normalised) value list degrade into "remove every value".
            raise invalid_value(f"remove on {target.text!r} takes a value filter in the path, not a value")
        section = self.doc if target.urn is None else self.doc.get(target.urn)
        if not isinstance(section, dict) or attribute.name not in section:
            if target.filter is not None and self.options.strict:
                raise no_target(f"no value matches {target.text!r}")
            return
        if target.filter is not None:
            self._remove_matching(target, section)
        elif target.sub is not None:
            self._remove_sub(target, section)
        else:
            self._check_removable(attribute, section[attribute.name], target.text)
            del section[attribute.name]

    def _remove_matching(self, target: _Target, section: Doc) -> None:
        assert target.filter is not None
        attribute, sub = target.attribute, target.sub
        elements = list(section.get(attribute.name) or [])
        matched = [element for element in elements if matches_element(target.filter, element)]
        if not matched:
            if self.options.strict:
                raise no_target(f"no value matches {target.text!r}")
            return
        if sub is None:
            self._check_removable(attribute, elements, target.text)
            section[attribute.name] = [e for e in elements if not any(e is m for m in matched)]
            return
        for element in matched:
            self._check_removable(sub, element.get(sub.name), target.text)
            element.pop(sub.name, None)
        section[attribute.name] = elements

    def _remove_sub(self, target: _Target, section: Doc) -> None:
        attribute, sub = target.attribute, target.sub
        assert sub is not None
        holders = section[attribute.name] if attribute.multi_valued else [section[attribute.name]]
        for holder in holders:
            if isinstance(holder, dict):
                self._check_removable(sub, holder.get(sub.name), target.text)
                holder.pop(sub.name, None)

    def _check_removable(self, attribute: Attribute, old: Any, where: str) -> None:
        """Section 3.5.2.2: removing a required (or readOnly) attribute is 400 mutability;
        so is removing a set immutable one (section 3.5.2: immutable values cannot change)."""
        if is_empty(old):
            return
        if attribute.required:
            raise mutability(f"{where} is required and cannot be removed")
        if attribute.mutability == "immutable":
            raise mutability(f"{where} is immutable")

    # ---- group members --------------------------------------------------------------------

    def _write_members(self, op: str, target: _Target, value: Any) -> None:
        if target.filter is not None or target.sub is not None:
            raise mutability(f"{target.text}: member values are immutable; add or remove members instead")
        members = _member_list(target.attribute, value, target.text)
        if op == "replace":
            self.members.replace(members)
        else:
            self.members.insert(members)

    def _remove_members(self, target: _Target, value: Any) -> None:
        if target.sub is not None:
            raise mutability(f"{target.text} cannot be removed on its own")
        if value is not None:
            raise invalid_value("remove on 'members' takes a value filter in the path, not a value")
        if target.filter is None:
            self.members.clear()
            return
        ids = _ids_in_filter(target.filter)
        if ids is None:
            current = self.members.current(self.load_members)
            ids = {str(m["value"]) for m in current if matches_element(target.filter, m) and "value" in m}
        self.members.delete(ids)


# ---- helpers --------------------------------------------------------------------------------


def _member_list(attribute: Attribute, value: Any, where: str) -> list[dict[str, Any]]:
    raw = value if isinstance(value, list) else [value]
    members: list[dict[str, Any]] = []
    for item in raw:
        if is_empty(item):
            continue
        member = coerce_value(attribute, item, where)
        if not isinstance(member, dict) or not isinstance(member.get("value"), str) or not member["value"]:
            raise invalid_value(f"{where}: every member needs a 'value' (the member's id)")
        members.append(member)
    return members


def element_attribute(attr: Attr) -> Attribute | None:
    """The sub-attribute a bound, element-relative filter attribute designates."""
    if attr.path is None:
        return None
    return attr.path.sub_attribute or attr.path.attribute


def _ids_in_filter(node: Filter) -> set[str] | None:
    """Ids of `value eq "x"` filters and `or` chains of them; None for any other filter."""
    if isinstance(node, Or):
        left, right = _ids_in_filter(node.left), _ids_in_filter(node.right)
        return None if left is None or right is None else left | right
    if isinstance(node, Compare) and node.op == "eq" and isinstance(node.value, str):
        sub = element_attribute(node.attr)
        if sub is not None and sub.name == "value":
            return {node.value}
    return None


def _eq_terms(node: Filter) -> list[tuple[Attribute, Any]] | None:
    """The `eq` comparisons of an `and` chain; None when the filter is anything else."""
    if isinstance(node, And):
        left, right = _eq_terms(node.left), _eq_terms(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, Compare) and node.op == "eq":
        sub = element_attribute(node.attr)
        return None if sub is None else [(sub, node.value)]
    return None


def _plain(literal: Any) -> Any:
    if isinstance(literal, Decimal):
        return int(literal) if literal == literal.to_integral_value() else float(literal)
    return literal


def _assign(holder: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        holder.pop(name, None)
    else:
        holder[name] = value


def _single_primary(elements: list[Any], touched: Sequence[Any]) -> None:
    """RFC 7644 section 3.5.2: setting `primary` true on one value makes it false on the others."""
    primaries = [e for e in elements if isinstance(e, dict) and e.get("primary") is True]
    if len(primaries) <= 1:
        return
    fresh = [e for e in touched if isinstance(e, dict) and e.get("primary") is True]
    winner = fresh[-1] if fresh else primaries[0]
    for element in primaries:
        if element is not winner:
            element["primary"] = False


def _pruned(value: Any) -> Any:
    """The value without empty members: absent is a missing key, never None, "", [] or {}."""
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            kept = _pruned(inner)
            if not is_empty(kept):
                out[key] = kept
        return out
    if isinstance(value, list):
        return [kept for kept in (_pruned(item) for item in value) if not is_empty(kept)]
    return value


def _pruned_doc(doc: Doc) -> Doc:
    pruned: Doc = _pruned(doc)
    return pruned


def _check_required_kept(rt: ResourceType, before: Doc, after: Doc) -> None:
    """Section 3.5.2.2: a required attribute that becomes unassigned is 400 mutability."""
    sections: list[tuple[Schema, Doc, Doc]] = [(rt.schema, before, after)]
    for ext in rt.extensions:
        old, new = before.get(ext.schema.id), after.get(ext.schema.id)
        if isinstance(old, dict):
            sections.append((ext.schema, old, new if isinstance(new, dict) else {}))
    for schema, old_section, new_section in sections:
        for attribute in schema.attributes:
            if attribute.required and attribute.name in old_section and attribute.name not in new_section:
                raise mutability(f"{attribute.name} is required and cannot be removed")


__all__ = ["MemberDelta", "PatchOptions", "PatchResult", "apply_patch"]
