"""Operating the server: the request log and its diagnostics (storage/request_log.py), the admin
console's reads (storage/console_queries.py), the schema's migrations (storage/migrate.py)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage.console_queries import RequestSearch
from provisor.storage.request_log import RequestFilter, UnknownCount


class RequestLog(Protocol):
    """The request log and the unknown-attribute counts: diagnostics, append-mostly."""

    async def append(self, engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
        """Append a batch of rows, committed when this returns (a transaction of its own; on
        SQLite, one of the worker's queued writes)."""
        ...

    def encode_names(self, names: tuple[str, ...] | list[str]) -> str | None:
        """The `unknown_attributes` column's form: a JSON list, NULL for none."""
        ...

    async def read_requests(
        self, conn: AsyncConnection, after: int, limit: int, where: RequestFilter | None = None
    ) -> list[dict[str, Any]]:
        """Rows with id > `after`, in id order (insertion order within a worker)."""
        ...

    async def prune(self, engine: AsyncEngine, older_than: str, *, batch: int = ...) -> int:
        """Delete the rows logged before `older_than`, oldest first, in short transactions of
        `batch` rows (plans that hold without statistics: storage/log_pruning.py); how many."""
        ...

    async def add_unknown_counts(
        self, conn: AsyncConnection, counts: dict[tuple[str, str], UnknownCount]
    ) -> None:
        """Fold the counts in, upserting in (tenant, name) order: concurrent writers cannot deadlock."""
        ...

    async def read_unknown_counts(self, conn: AsyncConnection, tenant_id: str) -> list[dict[str, Any]]:
        """A tenant's unknown attributes, the most frequent first, then by name."""
        ...


class ConsoleQueries(Protocol):
    """What the admin console shows: counts, the request log, events and webhook deliveries, read
    for a page (and one write: redriving one dead delivery). Not on the SCIM path."""

    async def tenant_ids(self, conn: AsyncConnection) -> list[str]:
        """Every tenant's id."""
        ...

    async def resource_counts(self, conn: AsyncConnection, tenant_id: str) -> dict[str, int]:
        """Users and groups of one tenant, counted on the (tenant, type, ...) index: one count per
        type, which SQLite answers in half the time of a GROUP BY over both."""
        ...

    async def recent_write_times(self, conn: AsyncConnection, tenant_id: str, limit: int) -> list[str]:
        """When the tenant's last `limit` write requests arrived, newest first (the silence alarm)."""
        ...

    async def events_in_window(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        *,
        start: str,
        end: str,
        actor: str | None,
        resource_id: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Events a request produced: written for its tenant by its token between its start and end,
        on its resource when it names one. Events carry no request id, so concurrent requests of the
        same token inside the same window cannot be told apart (docs/console.md)."""
        ...

    async def errors_since(self, conn: AsyncConnection, tenant_id: str, since: str) -> int:
        """How many of the tenant's requests since `since` answered 400 or above."""
        ...

    async def last_request(self, conn: AsyncConnection, tenant_id: str) -> dict[str, Any] | None:
        """The tenant's latest logged request (without bodies), None for none."""
        ...

    async def search_requests(
        self, conn: AsyncConnection, where: RequestSearch, limit: int
    ) -> list[dict[str, Any]]:
        """Newest first, without the bodies (the list page does not show them)."""
        ...

    async def get_request(self, conn: AsyncConnection, row_id: int) -> dict[str, Any] | None:
        """One request-log row with its bodies, None when unknown or pruned."""
        ...

    async def inactive_users(self, conn: AsyncConnection, tenant_id: str) -> int:
        """Users with `active` false. `active` is not indexed, so this reads every user document of
        the tenant (about half a second for 100,000 on SQLite): the console counts it in the
        background and shows the last count (service/console.py)."""
        ...

    async def token_rows(self, conn: AsyncConnection) -> list[dict[str, Any]]:
        """Every token's record with its state (active or revoked), never a secret."""
        ...

    async def event_feed(
        self, conn: AsyncConnection, *, tenant: str | None, before: int | None, after: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest first; `after` returns only newer events (the page's live refresh)."""
        ...

    async def resource_history(
        self, conn: AsyncConnection, tenant_id: str, resource_id: str, limit: int
    ) -> list[dict[str, Any]]:
        """The resource's latest `limit` events, newest first."""
        ...

    async def webhook_states(self, conn: AsyncConnection) -> dict[str, dict[str, Any]]:
        """Per webhook: pending and dead counts, the last delivery time and the latest failure."""
        ...

    async def delivery_backlog(self, conn: AsyncConnection) -> dict[str, dict[str, int]]:
        """Pending and dead deliveries per tenant: `{tenant: {"pending": n, "dead": n}}`."""
        ...

    async def deliveries_of(self, conn: AsyncConnection, seqs: list[int]) -> list[dict[str, Any]]:
        """The webhook deliveries of those events, with each webhook's URL."""
        ...

    async def dead_letters(self, conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` dead deliveries with their event's op and time."""
        ...

    async def redrive_one(self, conn: AsyncConnection, webhook_id: str, seq: int, at: str) -> bool:
        """One dead delivery pending again, due at `at`, with a fresh budget; False when it is not dead."""
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
