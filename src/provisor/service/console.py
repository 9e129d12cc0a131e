"""What the console's overview shows per tenant, and the silence alarm.

Silence alarm (docs/console.md): an IdP that provisions regularly writes in bursts (a sync cycle)
separated by a cadence. From the tenant's last `SILENCE_SAMPLE` write requests (POST, PUT, PATCH,
DELETE) in the request log, the gaps longer than `BURST_GAP` seconds are the pauses between bursts;
with at least `MIN_PAUSES` of them, the cadence is their median. The alarm is raised when the time
since the last write exceeds `SILENCE_FACTOR` times the cadence, and at least `MIN_SILENCE` seconds.
A tenant without such a history (new, occasional, or with the request log off) raises no alarm.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from provisor.clock import format_instant
from provisor.storage import console_queries as q
from provisor.storage import members as member_store
from provisor.storage import tenants as tenant_store
from provisor.storage import webhooks as webhook_store
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import ConsoleQueries, Members, Tenants, Webhooks
from provisor.storage.transactions import read_transaction
from provisor.storage.webhooks import Webhook

log = logging.getLogger("provisor.console")

#: Storage as the contract names it (storage/interfaces/).
_queries: ConsoleQueries = q
_members: Members = member_store
_tenants: Tenants = tenant_store
_webhooks: Webhooks = webhook_store

SILENCE_SAMPLE = 50
BURST_GAP = 60.0
MIN_PAUSES = 3
SILENCE_FACTOR = 3.0
MIN_SILENCE = 900.0


def parse_instant(instant: str) -> datetime:
    return datetime.strptime(instant, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Silence:
    alarm: bool
    cadence_seconds: float | None
    quiet_seconds: float | None


def silence(write_times: list[str], moment: datetime) -> Silence:
    """Apply the rule in the module docstring to write times, newest first."""
    if not write_times:
        return Silence(False, None, None)
    instants = [parse_instant(t) for t in write_times]
    quiet = (moment - instants[0]).total_seconds()
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(instants)]
    pauses = [g for g in gaps if g > BURST_GAP]
    if len(pauses) < MIN_PAUSES:
        return Silence(False, None, quiet)
    cadence = statistics.median(pauses)
    return Silence(quiet > max(SILENCE_FACTOR * cadence, MIN_SILENCE), cadence, quiet)


@dataclass(frozen=True)
class Counts:
    users: int
    inactive: int
    groups: int

    @property
    def active(self) -> int:
        return self.users - self.inactive


@dataclass(frozen=True)
class TenantSummary:
    tenant: str
    #: None until the first background count of this tenant has finished.
    counts: Counts | None
    last_request: dict[str, Any] | None
    errors_24h: int
    backlog: int
    dead: int
    silence: Silence


#: Counts older than this are recounted (in the background) on the next visit.
COUNTS_TTL_SECONDS = 60.0


class Overview:
    """The overview's figures. The request-log and delivery figures are read per visit through
    indexes; the resource counts are not: counting 100,000 users takes tens of milliseconds, and
    counting the inactive ones reads every user document (`active` is not indexed: about half a
    second on SQLite). So each process keeps the last counts per tenant and serves them while a
    background task recounts them when older than `COUNTS_TTL_SECONDS`; no visit waits for a
    count (the page says "counting" before the first)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._counts: dict[str, tuple[Counts, float]] = {}
        self._counting: dict[str, asyncio.Task[None]] = {}

    def counts(self, tenant: str) -> Counts | None:
        found = self._counts.get(tenant)
        if (found is None or time.monotonic() - found[1] > COUNTS_TTL_SECONDS) and (
            tenant not in self._counting
        ):
            task = asyncio.get_running_loop().create_task(self._count(tenant))
            self._counting[tenant] = task
            task.add_done_callback(lambda _: self._counting.pop(tenant, None))
        return found[0] if found else None

    async def _count(self, tenant: str) -> None:
        try:
            async with read_transaction(self.engine) as conn:
                both = await _queries.resource_counts(conn, tenant)
                inactive = await _queries.inactive_users(conn, tenant)
            self._counts[tenant] = (Counts(both["users"], inactive, both["groups"]), time.monotonic())
        except Exception as exc:  # the next visit retries
            log.warning("counting the resources of %s failed: %s", tenant, exc)

    async def summaries(self) -> list[TenantSummary]:
        moment = datetime.now(UTC)
        since = format_instant(moment - timedelta(hours=24))
        out: list[TenantSummary] = []
        async with read_transaction(self.engine) as conn:
            backlog = await _queries.delivery_backlog(conn)
            for tenant in await _queries.tenant_ids(conn):
                queue = backlog.get(tenant, {"pending": 0, "dead": 0})
                out.append(
                    TenantSummary(
                        tenant=tenant,
                        counts=self.counts(tenant),
                        last_request=await _queries.last_request(conn, tenant),
                        errors_24h=await _queries.errors_since(conn, tenant, since),
                        backlog=queue["pending"],
                        dead=queue["dead"],
                        silence=silence(
                            await _queries.recent_write_times(conn, tenant, SILENCE_SAMPLE), moment
                        ),
                    )
                )
        return out


@dataclass(frozen=True)
class LoggedRequest:
    row: dict[str, Any]
    events: list[dict[str, Any]]
    #: event seq -> that event's webhook deliveries
    deliveries: dict[int, list[dict[str, Any]]]


async def request_with_events(engine: AsyncEngine, row_id: int) -> LoggedRequest | None:
    """A request-log row, the events it produced and their deliveries (docs/console.md, "How a
    request is tied to its events"): events carry no request id, so they are found by tenant,
    actor (the token's name), the request's time window and, when it names one, its resource."""
    async with read_transaction(engine) as conn:
        row = await _queries.get_request(conn, row_id)
        if row is None:
            return None
        produced: list[dict[str, Any]] = []
        if row["tenant_id"] is not None and row["method"] in q.WRITE_METHODS and row["status"] < 400:
            end = parse_instant(row["at"]) + timedelta(milliseconds=float(row["duration_ms"]) + 5)
            produced = await _queries.events_in_window(
                conn,
                row["tenant_id"],
                start=row["at"],
                end=format_instant(end),
                actor=row["token_name"],
                resource_id=_resource_of(row),
                limit=200,
            )
        deliveries: dict[int, list[dict[str, Any]]] = {}
        for d in await _queries.deliveries_of(conn, [e["seq"] for e in produced]):
            deliveries.setdefault(int(d["event_seq"]), []).append(d)
    return LoggedRequest(row, produced, deliveries)


def _resource_of(row: dict[str, Any]) -> str | None:
    """The resource a logged request wrote: the id in its path, else its stored response's `id`."""
    parts = [s for s in str(row["path"]).split("/") if s]
    if len(parts) >= 4 and parts[2].lower() in ("users", "groups"):
        return parts[3]
    if row.get("response_body"):
        try:
            parsed = orjson.loads(row["response_body"])
        except orjson.JSONDecodeError:
            return None
        found = parsed.get("id") if isinstance(parsed, dict) else None
        return found if isinstance(found, str) else None
    return None


# ---- reads behind the console's pages: each is one read transaction -------------------------

RequestSearch = q.RequestSearch


async def tenant_ids(engine: AsyncEngine) -> list[str]:
    async with read_transaction(engine) as conn:
        return await _queries.tenant_ids(conn)


async def search_requests(
    engine: AsyncEngine, where: RequestSearch, limit: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """The logged requests matching `where` (newest first, at most `limit`), and the tenant ids."""
    async with read_transaction(engine) as conn:
        return await _queries.search_requests(conn, where, limit), await _queries.tenant_ids(conn)


async def resource_history(
    engine: AsyncEngine,
    tenant_id: str,
    resource_id: str,
    *,
    limit: int,
    members_after: str | None,
    members: int,
) -> tuple[list[dict[str, Any]], list[tuple[str, str, str, str]]]:
    """A resource's latest events (at most `limit`) and, with `members` > 0, a page of its members
    (a group's) after `members_after`."""
    async with read_transaction(engine) as conn:
        history = await _queries.resource_history(conn, tenant_id, resource_id, limit)
        page = (
            await _members.members_page(conn, tenant_id, resource_id, after=members_after, limit=members)
            if members
            else []
        )
    return history, page


async def event_feed(
    engine: AsyncEngine, *, tenant: str | None, before: int | None, after: int | None, limit: int
) -> list[dict[str, Any]]:
    async with read_transaction(engine) as conn:
        return await _queries.event_feed(conn, tenant=tenant, before=before, after=after, limit=limit)


@dataclass
class WebhooksView:
    hooks: list[Webhook]
    states: dict[str, dict[str, Any]]
    dead: list[dict[str, Any]]
    tenants: list[str]


async def webhooks_view(engine: AsyncEngine, dead_limit: int) -> WebhooksView:
    """Subscriptions, their delivery states and the latest dead letters, read together."""
    async with read_transaction(engine) as conn:
        return WebhooksView(
            await _webhooks.list_webhooks(conn),
            await _queries.webhook_states(conn),
            await _queries.dead_letters(conn, dead_limit),
            await _queries.tenant_ids(conn),
        )


async def token_rows(engine: AsyncEngine) -> tuple[list[dict[str, Any]], list[str]]:
    async with read_transaction(engine) as conn:
        return await _queries.token_rows(conn), await _queries.tenant_ids(conn)


async def all_tenant_settings(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """Every tenant's settings, by tenant id in the order of `tenant_ids`."""
    async with read_transaction(engine) as conn:
        return {t: await _tenants.get_settings(conn, t) for t in await _queries.tenant_ids(conn)}
