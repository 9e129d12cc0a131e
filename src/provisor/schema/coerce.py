"""Validate and coerce request bodies into the stored document form.

The stored document is the contract shared by storage, filter and PATCH: canonical attribute
names, values already of their schema type, no `id`/`meta`/`schemas`, no readOnly or
`returned: never` attributes, extension attributes under their canonical URN, and absent values
as missing keys (never None, "", [] or {}). Doing all of this once, here, means no other layer
has to cope with the many shapes identity providers actually send.

Choices worth knowing:

* Lenient where nothing is lost: names match case-insensitively at every level, unknown
  attributes and unknown extensions are ignored (their names are collected in `dropped` when the
  caller passes a list, so an IdP's mapping typo shows in the request log), string booleans and
  integral strings are accepted, numbers given for strings become strings, a single value for a multi-valued
  attribute is wrapped in a list, readOnly attributes are ignored, `canonicalValues` are
  suggestions and are not enforced (RFC 7643 section 2.3.1 allows other values).
* Strict where data would be lost or misread: an object or list for a simple attribute, a
  non-object for a complex one, an unparsable dateTime, a dotted name into a multi-valued
  attribute: all 400.
* More than one `primary: true` in a multi-valued attribute: the first keeps it, the others are
  set to `false` (the same demotion RFC 7644 section 3.5.2 prescribes for PATCH).
* A dateTime without a UTC offset is taken as UTC.
* On PUT, an immutable attribute omitted from the body keeps its stored value (it could not be
  cleared anyway); a different value is a 400 `mutability`. Immutable sub-attributes of
  *multi-valued* attributes (e.g. `members.value`) are not compared: elements have no identity,
  so adding and removing elements is allowed.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from provisor.errors import ScimError, invalid_syntax, invalid_value, mutability
from provisor.schema.model import (
    BINARY,
    BOOLEAN,
    COMPLEX,
    DATETIME,
    DECIMAL,
    INTEGER,
    REFERENCE,
    STRING_LIKE,
    Attribute,
    ResourceType,
    Schema,
)
from provisor.schema.registry import COMMON_ATTRIBUTES, Registry

__all__ = [
    "coerce_attribute",
    "coerce_resource",
    "coerce_value",
    "is_empty",
    "normalise_datetime",
]

#: Raw (not yet coerced) values of one schema section, keyed by canonical attribute name.
_Section = dict[str, tuple[Attribute, Any]]
#: Where the names of ignored unknown attributes go (None: nobody asked).
Dropped = list[str] | None

_DATETIME_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d+))?)?"
    r"\s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_INTEGER_RE = re.compile(r"[+-]?\d+")


# ---- public API -----------------------------------------------------------------------------


def is_empty(value: Any) -> bool:
    """True for the values that mean "absent" in SCIM: null, "", [] and {}."""
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def coerce_resource(
    registry: Registry,
    rt: ResourceType,
    body: dict[str, Any],
    *,
    existing: dict[str, Any] | None = None,
    dropped: Dropped = None,
) -> dict[str, Any]:
    """Turn a POST/PUT body into a stored document; `existing` is the stored doc on PUT.

    The names of unknown attributes, which are ignored, are appended to `dropped` as the client
    wrote them (`favouriteColour`, `name.middle`, `emails.label`, an unknown extension's URN).
    """
    if not isinstance(body, dict):
        raise invalid_syntax("the request body must be a JSON object")
    sections: dict[str | None, _Section] = {}
    for key, value in body.items():
        if key.lower() == "schemas":
            _check_schemas(value)
        else:
            _route(registry, rt, sections, key, value, dropped)
    doc = _coerce_section(sections.pop(None, {}), "", dropped)
    for urn, section in sections.items():
        coerced = _coerce_section(section, f"{urn}:", dropped)
        if coerced and urn is not None:
            doc[urn] = coerced
    _check_required(rt, doc)
    if existing is not None:
        _check_immutable(rt, doc, existing)
    return doc


def coerce_attribute(attribute: Attribute, value: Any, where: str, dropped: Dropped = None) -> Any:
    """Coerce a whole attribute value (a list for multi-valued ones); None when absent."""
    if not attribute.multi_valued:
        if isinstance(value, list):
            if not value:
                return None
            raise invalid_value(f"{where} is single-valued; a list was given")
        return coerce_value(attribute, value, where, dropped)
    items = value if isinstance(value, list) else [value]
    out = []
    for index, item in enumerate(items):
        if isinstance(item, list):
            raise invalid_value(f"{where}[{index}]: nested lists are not allowed")
        coerced = coerce_value(attribute, item, f"{where}[{index}]", dropped)
        if coerced is not None:
            out.append(coerced)
    if not out:
        return None
    if attribute.is_complex:
        _enforce_single_primary(out)
    return out


def coerce_value(attribute: Attribute, value: Any, where: str, dropped: Dropped = None) -> Any:
    """Coerce one value (one element of a multi-valued attribute); None when it means absent.

    ReadOnly and `returned: never` sub-attributes of a complex value are dropped; whether the
    attribute itself may be written is the caller's decision. Unknown sub-attributes are dropped
    too, and named in `dropped`.
    """
    if is_empty(value):
        return None
    if attribute.is_complex:
        return _coerce_complex(attribute, value, where, dropped)
    if isinstance(value, dict | list):
        raise invalid_value(f"{where} must be a single {attribute.type} value, not {_kind(value)}")
    return _coerce_scalar(attribute, value, where)


def normalise_datetime(text: str, where: str = "value") -> str:
    """Parse an ISO 8601 instant and return it as UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`.

    Fixed width makes stored instants compare correctly as plain strings (filters, sorting).
    """
    match = _DATETIME_RE.fullmatch(text.strip())
    if match is None:
        raise invalid_value(f"{where}: {text!r} is not an ISO 8601 dateTime")
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    try:
        year, month, day = (int(part) for part in match["date"].split("-"))
        instant = datetime(
            year,
            month,
            day,
            int(match["h"]),
            int(match["m"]),
            int(match["s"] or 0),
            int(frac),
            tzinfo=_parse_offset(match["tz"]),
        )
        utc = instant.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise invalid_value(f"{where}: {text!r} is not a valid dateTime ({exc})") from exc
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


# ---- routing: body keys to (section, attribute) -----------------------------------------------


def _route(
    registry: Registry,
    rt: ResourceType,
    sections: dict[str | None, _Section],
    key: str,
    value: Any,
    dropped: Dropped,
) -> None:
    """File one body key under its schema section, resolving names and URN qualification."""
    if not key.lower().startswith("urn:"):
        _route_name(rt, sections, None, key, value, dropped)
        return
    try:
        urn, rest = registry.split_urn(rt, key)
    except ScimError:
        if dropped is not None:
            dropped.append(key)
        return  # an extension this resource type does not have: ignored
    if rest:
        _route_name(rt, sections, urn, rest, value, dropped)
        return
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid_value(f"{key} must be an object of attributes, not {_kind(value)}")
    for name, inner in value.items():
        _route_name(rt, sections, urn, name, inner, dropped)


def _route_name(
    rt: ResourceType,
    sections: dict[str | None, _Section],
    urn: str | None,
    name: str,
    value: Any,
    dropped: Dropped,
) -> None:
    """File `name` (maybe dotted, `name.givenName`) of schema `urn` (None = core) into `sections`."""
    head, _, sub_name = name.partition(".")
    attribute = _attribute(rt, urn, head)
    if attribute is None:
        if dropped is not None:
            dropped.append(f"{urn}:{name}" if urn else name)
        return
    if not _writable(attribute):
        return
    section = sections.setdefault(urn, {})
    if not sub_name:
        section[attribute.name] = (attribute, value)
        return
    sub = attribute.sub(sub_name)
    if sub is None or "." in sub_name:
        if dropped is not None:
            dropped.append(f"{urn}:{name}" if urn else name)
        return
    if attribute.multi_valued:
        raise invalid_value(f"{name}: cannot set a sub-attribute of multi-valued {attribute.name} by name")
    _, current = section.get(attribute.name, (attribute, None))
    merged = dict(current) if isinstance(current, dict) else {}
    merged[sub.name] = value
    section[attribute.name] = (attribute, merged)


def _attribute(rt: ResourceType, urn: str | None, name: str) -> Attribute | None:
    if urn is None:
        found = rt.schema.attribute(name)
        if found is not None:
            return found
        return next((a for a in COMMON_ATTRIBUTES if a.name.lower() == name.lower()), None)
    ext = rt.extension(urn)
    return ext.schema.attribute(name) if ext else None


def _writable(attribute: Attribute) -> bool:
    """Client values are kept only for attributes a client may set and a server may keep."""
    return not attribute.read_only and attribute.returned != "never"


def _coerce_section(section: _Section, prefix: str, dropped: Dropped) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (attribute, raw) in section.items():
        value = coerce_attribute(attribute, raw, f"{prefix}{name}", dropped)
        if value is not None:
            out[name] = value
    return out


def _check_schemas(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid_syntax("'schemas' must be a list of schema URNs")


# ---- complex and multi-valued -----------------------------------------------------------------


def _coerce_complex(attribute: Attribute, value: Any, where: str, dropped: Dropped) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        raise invalid_value(f"{where} must be an object, not {_kind(value)}")
    out: dict[str, Any] = {}
    for key, raw in value.items():
        sub = attribute.sub(key)
        if sub is None:
            if dropped is not None:
                dropped.append(f"{where.partition('[')[0]}.{key}")  # `emails[0]` -> `emails.label`
            continue
        if not _writable(sub):
            continue
        coerced = coerce_attribute(sub, raw, f"{where}.{sub.name}")
        if coerced is not None:
            out[sub.name] = coerced
    if not out:
        return None
    for sub in attribute.sub_attributes:
        if sub.required and _writable(sub) and sub.name not in out:
            raise invalid_value(f"{where}.{sub.name} is required")
    return out


def _enforce_single_primary(elements: list[Any]) -> None:
    seen = False
    for element in elements:
        if isinstance(element, dict) and element.get("primary") is True:
            if seen:
                element["primary"] = False
            seen = True


# ---- scalars ----------------------------------------------------------------------------------


def _coerce_string(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise invalid_value(f"{where} must be a string, not {_kind(value)}")


def _coerce_text_only(value: Any, where: str) -> str:
    """References and binary data: a number is never a plausible URI or base64 payload."""
    if isinstance(value, str):
        return value
    raise invalid_value(f"{where} must be a string, not {_kind(value)}")


def _coerce_boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid_value(f"{where} must be a boolean, not {value!r}")


def _coerce_integer(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_RE.fullmatch(value.strip()):
        return int(value.strip())
    raise invalid_value(f"{where} must be an integer, not {value!r}")


def _coerce_decimal(value: Any, where: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise invalid_value(f"{where} must be a decimal number, not {value!r}")
    return number


def _coerce_datetime(value: Any, where: str) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    if not isinstance(value, str):
        raise invalid_value(f"{where} must be a dateTime string, not {_kind(value)}")
    return normalise_datetime(value, where)


def _parse_offset(text: str | None) -> timezone:
    if text is None or text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"UTC offset {text} out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


_SCALAR_COERCERS: dict[str, Callable[[Any, str], Any]] = {
    BOOLEAN: _coerce_boolean,
    INTEGER: _coerce_integer,
    DECIMAL: _coerce_decimal,
    DATETIME: _coerce_datetime,
    REFERENCE: _coerce_text_only,
    BINARY: _coerce_text_only,
}


def _coerce_scalar(attribute: Attribute, value: Any, where: str) -> Any:
    coercer: Callable[[Any, str], Any] = _SCALAR_COERCERS.get(attribute.type) or _coerce_string
    return coercer(value, where)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# ---- whole-document checks ------------------------------------------------------------------


def _check_required(rt: ResourceType, doc: dict[str, Any]) -> None:
    _check_required_in(rt.schema, doc, "")
    for ext in rt.extensions:
        section = doc.get(ext.schema.id)
        if section is None and ext.required:
            raise invalid_value(f"the extension {ext.schema.id} is required")
        if section is not None:
            _check_required_in(ext.schema, section, f"{ext.schema.id}:")


def _check_required_in(schema: Schema, section: dict[str, Any], prefix: str) -> None:
    for attribute in schema.attributes:
        if attribute.required and _writable(attribute) and attribute.name not in section:
            raise invalid_value(f"{prefix}{attribute.name} is required")


def _check_immutable(rt: ResourceType, doc: dict[str, Any], existing: dict[str, Any]) -> None:
    """RFC 7644 section 3.5.1: on replace, a set immutable value must be sent unchanged."""
    _check_immutable_in(rt.schema, doc, existing, "")
    for ext in rt.extensions:
        old = existing.get(ext.schema.id)
        if not isinstance(old, dict):
            continue
        new = doc.get(ext.schema.id, {})
        _check_immutable_in(ext.schema, new, old, f"{ext.schema.id}:")
        if new:
            doc[ext.schema.id] = new


def _check_immutable_in(schema: Schema, new: dict[str, Any], old: dict[str, Any], prefix: str) -> None:
    for attribute in schema.attributes:
        name = attribute.name
        if name not in old:
            continue
        if attribute.mutability == "immutable":
            if name not in new:
                new[name] = copy.deepcopy(old[name])
            elif not _same(attribute, new[name], old[name]):
                raise mutability(f"{prefix}{name} is immutable and cannot be changed")
        elif attribute.is_complex and not attribute.multi_valued and isinstance(old[name], dict):
            _check_immutable_subs(attribute, new, old[name], f"{prefix}{name}")


def _check_immutable_subs(attribute: Attribute, new: dict[str, Any], old: dict[str, Any], where: str) -> None:
    for sub in attribute.sub_attributes:
        if sub.mutability != "immutable" or sub.name not in old:
            continue
        element = new.setdefault(attribute.name, {})
        if sub.name not in element:
            element[sub.name] = copy.deepcopy(old[sub.name])
        elif not _same(sub, element[sub.name], old[sub.name]):
            raise mutability(f"{where}.{sub.name} is immutable and cannot be changed")


def _same(attribute: Attribute, left: Any, right: Any) -> bool:
    """Equality as the attribute defines it (case-insensitive unless caseExact)."""
    if attribute.multi_valued and isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            _same_single(attribute, a, b) for a, b in zip(left, right, strict=True)
        )
    return _same_single(attribute, left, right)


def _same_single(attribute: Attribute, left: Any, right: Any) -> bool:
    if attribute.type == COMPLEX and isinstance(left, dict) and isinstance(right, dict):
        if left.keys() != right.keys():
            return False
        return all(_same(attribute.sub(key) or Attribute(name=key), left[key], right[key]) for key in left)
    if attribute.type in STRING_LIKE and not attribute.case_exact and isinstance(left, str):
        return isinstance(right, str) and left.lower() == right.lower()
    return bool(left == right)
