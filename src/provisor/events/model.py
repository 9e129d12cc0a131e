"""The event as consumers see it: one shape for the feed, webhooks, hooks and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Event:
    """One committed change from the outbox. `id` is `<tenant>:<seq>`, stable and unique."""

    seq: int
    tenant: str
    at: str
    resource_type: str
    resource_id: str
    op: str
    version: int | None
    actor: str | None
    payload: dict[str, Any] | None

    @property
    def id(self) -> str:
        return f"{self.tenant}:{self.seq}"

    @classmethod
    def from_row(cls, row: Any) -> Event:
        return cls(
            seq=int(row["seq"]),
            tenant=row["tenant_id"],
            at=row["at"],
            resource_type=row["resource_type"],
            resource_id=row["resource_id"],
            op=row["op"],
            version=row["version"],
            actor=row["actor"],
            payload=row["payload"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "tenant": self.tenant,
            "at": self.at,
            "resourceType": self.resource_type,
            "resourceId": self.resource_id,
            "op": self.op,
            "version": self.version,
            "actor": self.actor,
            "payload": self.payload,
        }


class EventOp(StrEnum):
    """Every `op` an event can carry: the vocabulary of webhook `--events` and the feed's `op=`.
    Writers name ops only through this enum, so a new op is added here or nowhere."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    ACTIVATED = "activated"
    DEACTIVATED = "deactivated"
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"
    RESTORED = "restored"
    PURGED = "purged"
    ADOPTED = "adopted"  # an unmanaged (imported) user taken over by an IdP's POST (service/adoption.py)
    ROLE_GRANTED = "role_granted"
    ROLE_REVOKED = "role_revoked"


OPS = tuple(op.value for op in EventOp)

#: The columns of an event row as writers give them (the table adds `seq`), in this order: the
#: single place storage's event INSERTs take their column list from (storage/outbox_sql.py).
EVENT_COLUMNS = ("tenant_id", "at", "resource_type", "resource_id", "op", "version", "actor", "payload")


def event_row(
    *,
    tenant_id: str,
    at: str,
    resource_type: str,
    resource_id: str,
    op: EventOp,
    version: int | None,
    actor: str | None,
    payload: dict[str, Any] | None,
) -> dict[str, Any]:
    """The one builder of an event row (keys: EVENT_COLUMNS), whichever statement writes it."""
    return {
        "tenant_id": tenant_id,
        "at": at,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "op": EventOp(op).value,
        "version": version,
        "actor": actor,
        "payload": payload,
    }


#: Resource types of events; the endpoint plurals `Users` / `Groups` are accepted as aliases.
RESOURCE_TYPES = ("User", "Group")
_TYPE_ALIASES = {name.lower(): name for name in RESOURCE_TYPES} | {
    f"{name.lower()}s": name for name in RESOURCE_TYPES
}


def parse_ops(text: str) -> list[str]:
    """`created,Member_Added` -> the ops it names; ValueError naming any unknown one."""
    wanted = [op.strip().lower() for op in text.split(",") if op.strip()]
    unknown = [op for op in wanted if op not in OPS]
    if unknown:
        raise ValueError(f"unknown event op {', '.join(map(repr, unknown))}; known: {', '.join(OPS)}")
    return wanted


def parse_resource_type(text: str) -> str:
    """`User`, `users`, `Groups` ... -> `User` or `Group`; ValueError for anything else."""
    found = _TYPE_ALIASES.get(text.strip().lower())
    if found is None:
        raise ValueError(f"unknown resource type {text!r}; use User or Group (or Users, Groups)")
    return found
