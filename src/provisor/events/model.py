"""The event as consumers see it: one shape for the feed, webhooks, hooks and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
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


#: Every `op` an event can carry: the vocabulary of webhook `--events` and the feed's `op=`.
OPS = (
    "created",
    "updated",
    "deleted",
    "activated",
    "deactivated",
    "member_added",
    "member_removed",
    "restored",
    "purged",
    "role_granted",
    "role_revoked",
)
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
