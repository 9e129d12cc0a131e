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
