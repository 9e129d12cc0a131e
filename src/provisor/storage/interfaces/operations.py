"""Operating the server: the request log and its diagnostics (storage/request_log.py), the schema's
migrations (storage/migrate.py)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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


class Migrations(Protocol):
    """The database schema's revisions (Alembic, storage/migrations/): upgrading to this code's, and
    reading which are applied."""

    async def upgrade(self, engine: AsyncEngine, revision: str = "head") -> None:
        """Bring the database schema to the latest revision (or to `revision`, for tests of old
        schemas)."""
        ...

    def code_revisions(self) -> tuple[frozenset[str], frozenset[str]]:
        """(heads, all): the revisions this code's migrations end at (one, unless branches await a
        merge), and every revision they know. With `current_revisions`, the one reading of "is the
        schema current" that `/readyz` (http/health.py) and the CLI's read-only commands share."""
        ...

    async def current_revisions(self, engine: AsyncEngine) -> frozenset[str]:
        """The revisions recorded in the database (empty when it was never migrated)."""
        ...
