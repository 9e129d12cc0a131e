"""Operating the server: the request log and its diagnostics (storage/request_log.py)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.storage.request_log import RequestFilter, UnknownCount


class RequestLog(Protocol):
    """The request log and the unknown-attribute counts: diagnostics, append-mostly."""

    async def insert_rows(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Append a batch of rows in the caller's transaction."""
        ...

    async def read_requests(
        self, conn: AsyncConnection, after: int, limit: int, where: RequestFilter | None = None
    ) -> list[dict[str, Any]]:
        """Rows with id > `after`, in id order (insertion order within a worker)."""
        ...

    async def prune(self, conn: AsyncConnection, older_than: str) -> int:
        """Delete the rows logged before `older_than`; how many."""
        ...

    async def add_unknown_counts(
        self, conn: AsyncConnection, counts: dict[tuple[str, str], UnknownCount]
    ) -> None:
        """Fold the counts in, upserting in (tenant, name) order: concurrent writers cannot deadlock."""
        ...

    async def read_unknown_counts(self, conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
        """A tenant's unknown attributes, the most frequent first, then by name."""
        ...
