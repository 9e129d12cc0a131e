"""Reading import files: JSON Lines, a ListResponse JSON document, or CSV with a column mapping.

Every record keeps its line number so a bad one can be reported precisely and skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from provisor.schema.model import ResourceType
from provisor.schema.registry import Registry

GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"


@dataclass(frozen=True)
class Record:
    line: int
    doc: dict[str, Any]


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


Item = Record | BadLine


def resource_type_of(doc: dict[str, Any], default: str) -> str:
    """`User` or `Group`, from meta.resourceType or schemas; `default` (the --type) wins if given."""
    meta = doc.get("meta")
    if isinstance(meta, dict) and meta.get("resourceType") in ("User", "Group"):
        return str(meta["resourceType"])
    schemas = doc.get("schemas")
    if isinstance(schemas, list) and GROUP_URN in schemas:
        return "Group"
    return default


def read_json_records(path: Path) -> Iterator[Item]:
    """JSON Lines, or one JSON document (a ListResponse or a single resource)."""
    raw = path.read_bytes()
    stripped = raw.lstrip()
    if stripped.startswith(b"{") and b"\n{" not in stripped.rstrip():
        try:
            whole = orjson.loads(raw)
        except orjson.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            resources = whole.get("Resources")
            items = resources if isinstance(resources, list) else [whole]
            for number, doc in enumerate(items, start=1):
                yield Record(number, doc) if isinstance(doc, dict) else BadLine(number, "not a JSON object")
            return
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield BadLine(number, f"invalid JSON: {exc}")
            continue
        yield Record(number, doc) if isinstance(doc, dict) else BadLine(number, "not a JSON object")


def parse_mapping(text: str) -> dict[str, str]:
    """`userName=email,name.givenName=first` -> {SCIM attribute path: CSV column}."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        attr, sep, column = part.partition("=")
        if not sep or not attr.strip() or not column.strip():
            raise ValueError(f"bad mapping {part!r}; expected attribute=column")
        mapping[attr.strip()] = column.strip()
    return mapping


def _place(registry: Registry, rt: ResourceType, doc: dict[str, Any], path: str, value: str) -> None:
    """Set a dotted attribute path; multi-valued attributes get a one-element list."""
    resolved = registry.resolve(rt, path)
    if resolved is None:
        raise ValueError(f"unknown attribute {path!r} in --map")
    target: dict[str, Any] = doc
    if resolved.urn is not None:
        target = doc.setdefault(resolved.urn, {})
        if resolved.urn not in doc["schemas"]:
            doc["schemas"].append(resolved.urn)
    top = resolved.attribute
    typed: Any = value
    leaf = resolved.target
    if leaf.type == "boolean":
        typed = value.strip().lower() in ("true", "1", "yes", "y")
    elif leaf.type == "integer":
        typed = int(value)
    if resolved.sub_attribute is None:
        target[top.name] = [typed] if top.multi_valued else typed
    elif top.multi_valued:
        elements = target.setdefault(top.name, [{}])
        elements[0][resolved.sub_attribute.name] = typed
    else:
        target.setdefault(top.name, {})[resolved.sub_attribute.name] = typed


def read_csv_records(
    path: Path, mapping: dict[str, str], registry: Registry, rt: ResourceType
) -> Iterator[Item]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in mapping.values() if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"CSV has no column(s) {', '.join(missing)}")
        for row in reader:
            number = reader.line_num
            doc: dict[str, Any] = {"schemas": [rt.schema.id]}
            try:
                for attr, column in mapping.items():
                    value = row.get(column)
                    if value is not None and value.strip():
                        _place(registry, rt, doc, attr, value.strip())
            except ValueError as exc:
                yield BadLine(number, str(exc))
                continue
            yield Record(number, doc)
