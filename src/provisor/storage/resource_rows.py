"""A resource as stored: the building blocks of storage/resources.py that modules below
storage/kind.py may import (storage/interfaces.py types the per-database parts with them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.events.model import EventOp

IndexRow = tuple[str, str, bool]

#: (group id, group displayName) of the groups directly containing a resource.
Groups = list[tuple[str, str]]


@dataclass(frozen=True)
class StoredResource:
    id: str
    resource_type: str
    version: int
    created: str
    last_modified: str
    doc: dict[str, Any]


class ResourceWrite:
    """One read-apply-write of a resource (storage/resources.py `resource_write`): the resource as
    read (`current`, with its direct groups when asked for) and `update`, which stores its next
    version."""

    def __init__(self, tenant_id: str, current: StoredResource, groups: Groups | None) -> None:
        self.tenant_id = tenant_id
        self.current = current
        self.groups = groups

    @property
    def conn(self) -> AsyncConnection | None:
        """The transaction holding the resource's row lock, for writes beside the row (a group's
        members); None when the resource was read without one."""
        return None

    async def update(
        self,
        stored: StoredResource,
        *,
        index: Sequence[IndexRow] | None,
        previous_index: Sequence[IndexRow] | None,
        op: EventOp | None,
        actor: str | None,
        payload: dict[str, Any] | None,
    ) -> bool:
        """Store `stored` (the version after `current`), replace the index rows that differ
        between `previous_index` and `index` (None: keep them), and append the `op` event (None:
        none), atomically. False when the stored version is no longer `current` (another write
        got in first; only without the lock): nothing was written. Raises UniqueViolation."""
        raise NotImplementedError
