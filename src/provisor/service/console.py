"""What the console's overview shows per tenant, and the silence alarm.

Silence alarm (docs/console.md): an IdP that provisions regularly writes in bursts (a sync cycle)
separated by a cadence. From the tenant's last `SILENCE_SAMPLE` write requests (POST, PUT, PATCH,
DELETE) in the request log, the gaps longer than `BURST_GAP` seconds are the pauses between bursts;
with at least `MIN_PAUSES` of them, the cadence is their median. The alarm is raised when the time
since the last write exceeds `SILENCE_FACTOR` times the cadence, and at least `MIN_SILENCE` seconds.
A tenant without such a history (new, occasional, or with the request log off) raises no alarm.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.clock import format_instant
from provisor.storage import console_queries as q
from provisor.storage.transactions import read_transaction

SILENCE_SAMPLE = 50
BURST_GAP = 60.0
MIN_PAUSES = 3
SILENCE_FACTOR = 3.0
MIN_SILENCE = 900.0


def _parse(instant: str) -> datetime:
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
    instants = [_parse(t) for t in write_times]
    quiet = (moment - instants[0]).total_seconds()
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(instants)]
    pauses = [g for g in gaps if g > BURST_GAP]
    if len(pauses) < MIN_PAUSES:
        return Silence(False, None, quiet)
    cadence = statistics.median(pauses)
    return Silence(quiet > max(SILENCE_FACTOR * cadence, MIN_SILENCE), cadence, quiet)


@dataclass(frozen=True)
class TenantSummary:
    tenant: str
    users: int
    inactive: int
    groups: int
    last_request: dict[str, Any] | None
    errors_24h: int
    backlog: int
    dead: int
    silence: Silence

    @property
    def active(self) -> int:
        return self.users - self.inactive


async def overview(engine: AsyncEngine) -> list[TenantSummary]:
    moment = datetime.now(UTC)
    since = format_instant(moment - timedelta(hours=24))
    out: list[TenantSummary] = []
    async with read_transaction(engine) as conn:
        backlog = await q.delivery_backlog(conn)
        for tenant in await q.tenant_ids(conn):
            counts = await q.resource_counts(conn, tenant)
            queue = backlog.get(tenant, {"pending": 0, "dead": 0})
            out.append(
                TenantSummary(
                    tenant=tenant,
                    users=counts["users"],
                    inactive=counts["inactive"],
                    groups=counts["groups"],
                    last_request=await q.last_request(conn, tenant),
                    errors_24h=await q.errors_since(conn, tenant, since),
                    backlog=queue["pending"],
                    dead=queue["dead"],
                    silence=silence(await q.recent_write_times(conn, tenant, SILENCE_SAMPLE), moment),
                )
            )
    return out
