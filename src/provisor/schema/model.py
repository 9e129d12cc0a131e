"""RFC 7643 schema definitions as immutable values.

Everything that depends on what an attribute *is* (validation, coercion, filters, PATCH,
projection, sorting, discovery) reads these objects; nothing is written per resource by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STRING = "string"
BOOLEAN = "boolean"
DECIMAL = "decimal"
INTEGER = "integer"
DATETIME = "dateTime"
BINARY = "binary"
REFERENCE = "reference"
COMPLEX = "complex"
#: Every attribute type of RFC 7643 section 2.3.
ALL_TYPES = (STRING, BOOLEAN, DECIMAL, INTEGER, DATETIME, BINARY, REFERENCE, COMPLEX)

#: Types compared as strings (by `caseExact`), as opposed to numbers, booleans and instants.
STRING_LIKE = frozenset({STRING, REFERENCE, BINARY})


@dataclass(frozen=True)
class Attribute:
    """One attribute or sub-attribute, with its RFC 7643 section 2.2 characteristics."""

    name: str
    type: str = STRING
    multi_valued: bool = False
    required: bool = False
    case_exact: bool = False
    mutability: str = "readWrite"
    returned: str = "default"
    uniqueness: str = "none"
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    description: str = ""
    sub_attributes: tuple[Attribute, ...] = ()
    _subs_by_lower: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._subs_by_lower.update({sub.name.lower(): sub for sub in self.sub_attributes})

    def sub(self, name: str) -> Attribute | None:
        """The sub-attribute called `name`, matched case-insensitively."""
        return self._subs_by_lower.get(name.lower())

    @property
    def is_complex(self) -> bool:
        return self.type == COMPLEX

    @property
    def read_only(self) -> bool:
        return self.mutability == "readOnly"

    def to_scim(self) -> dict[str, Any]:
        """The attribute as it appears in a `/Schemas` response."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
        }
        if self.type != COMPLEX:
            out["caseExact"] = self.case_exact
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            out["referenceTypes"] = list(self.reference_types)
        out["mutability"] = self.mutability
        out["returned"] = self.returned
        if self.type != COMPLEX:
            out["uniqueness"] = self.uniqueness
        if self.sub_attributes:
            out["subAttributes"] = [sub.to_scim() for sub in self.sub_attributes]
        return out

    @classmethod
    def from_scim(cls, data: dict[str, Any]) -> Attribute:
        """Build from the RFC 7643 section 7 representation (as served by `/Schemas`)."""
        return cls(
            name=data["name"],
            type=data.get("type", STRING),
            multi_valued=bool(data.get("multiValued", False)),
            required=bool(data.get("required", False)),
            case_exact=bool(data.get("caseExact", False)),
            mutability=data.get("mutability", "readWrite"),
            returned=data.get("returned", "default"),
            uniqueness=data.get("uniqueness", "none"),
            canonical_values=tuple(data.get("canonicalValues", ())),
            reference_types=tuple(data.get("referenceTypes", ())),
            description=data.get("description", ""),
            sub_attributes=tuple(cls.from_scim(sub) for sub in data.get("subAttributes", ())),
        )


@dataclass(frozen=True)
class Schema:
    """A schema: its URN id and its top-level attributes."""

    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    _by_lower: dict[str, Attribute] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_lower.update({attr.name.lower(): attr for attr in self.attributes})

    def attribute(self, name: str) -> Attribute | None:
        """The top-level attribute called `name`, matched case-insensitively."""
        return self._by_lower.get(name.lower())

    def to_scim(self) -> dict[str, Any]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [attr.to_scim() for attr in self.attributes],
        }

    @classmethod
    def from_scim(cls, data: dict[str, Any]) -> Schema:
        return cls(
            id=data["id"],
            name=data.get("name", ""),
            description=data.get("description", ""),
            attributes=tuple(Attribute.from_scim(a) for a in data.get("attributes", ())),
        )


@dataclass(frozen=True)
class Extension:
    schema: Schema
    required: bool = False


@dataclass(frozen=True)
class ResourceType:
    """A resource type (RFC 7643 section 6): core schema plus schema extensions."""

    name: str  # "User"
    endpoint: str  # "/Users"
    description: str
    schema: Schema
    extensions: tuple[Extension, ...] = ()

    def extension(self, urn: str) -> Extension | None:
        lowered = urn.lower()
        for ext in self.extensions:
            if ext.schema.id.lower() == lowered:
                return ext
        return None

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(ext.schema.id for ext in self.extensions))


@dataclass(frozen=True)
class AttrPath:
    """A resolved attribute path: where an attribute lives in a stored document.

    `urn` is None for core-schema and common attributes (stored at the top level of the
    document) and the extension's URN for extension attributes (stored under that URN key).
    """

    urn: str | None
    attribute: Attribute
    sub_attribute: Attribute | None = None

    @property
    def target(self) -> Attribute:
        """The attribute the path finally designates (the sub-attribute when there is one)."""
        return self.sub_attribute or self.attribute

    @property
    def keys(self) -> tuple[str, ...]:
        """Canonical document keys from the document root, e.g. ("name", "givenName")."""
        head = (self.urn,) if self.urn else ()
        tail = (self.sub_attribute.name,) if self.sub_attribute else ()
        return (*head, self.attribute.name, *tail)

    @property
    def dotted(self) -> str:
        """Canonical name without URN, e.g. "name.givenName" (used as index keys)."""
        if self.sub_attribute:
            return f"{self.attribute.name}.{self.sub_attribute.name}"
        return self.attribute.name

    @property
    def is_common(self) -> bool:
        """True for `id`, `externalId` and `meta.*` (RFC 7643 section 3.1)."""
        return self.urn is None and self.attribute.name in COMMON_NAMES

    def __str__(self) -> str:
        return f"{self.urn}:{self.dotted}" if self.urn else self.dotted


COMMON_NAMES = frozenset({"id", "externalId", "meta"})
