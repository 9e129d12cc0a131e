"""The deprovisioning report: which deactivations and deletions each consumer acknowledged, when.

An operator proves offboarding with it: every user deactivated or deleted, and for every named
consumer in scope the time its committed position first passed that event (storage/consumers.py).
Events older than the tenant's `deprovision_ack_threshold_seconds` that some consumer has not
acknowledged are the ones to chase; the time-to-revoke distribution (acknowledgement time minus
event time, per consumer, over a window) shows how long revocation takes in practice.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from provisor.clock import format_instant
from provisor.errors import not_found
from provisor.storage import consumers as store
from provisor.storage import tenants as tenant_store
from provisor.storage.handles import AsyncConnection, AsyncEngine
from provisor.storage.interfaces import DeprovisioningLog, Tenants
from provisor.storage.transactions import read_transaction

#: Storage as the contract names it (storage/interfaces/).
_store: DeprovisioningLog = store
_tenants: Tenants = tenant_store

DEFAULT_THRESHOLD_SECONDS = 3600
DEFAULT_WINDOW_SECONDS = 7 * 86400
THRESHOLD_SETTING = "deprovision_ack_threshold_seconds"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def delay_summary(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    delays = sorted(max(0.0, (_instant(acked) - _instant(at)).total_seconds()) for at, acked in pairs)
    if not delays:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "count": len(delays),
        "p50": round(_percentile(delays, 0.50), 3),
        "p90": round(_percentile(delays, 0.90), 3),
        "p99": round(_percentile(delays, 0.99), 3),
        "max": round(delays[-1], 3),
    }


async def report(
    conn: AsyncConnection,
    tenant: str,
    settings: dict[str, Any],
    *,
    unacknowledged: bool,
    window_seconds: int,
    limit: int,
) -> dict[str, Any]:
    """The JSON body of `GET /admin/v1/deprovisioning` (also printed by the CLI)."""
    threshold = int(settings.get(THRESHOLD_SETTING, DEFAULT_THRESHOLD_SECONDS))
    moment = datetime.now(UTC)
    overdue_before = format_instant(moment - timedelta(seconds=threshold))
    window_start = format_instant(moment - timedelta(seconds=window_seconds))
    if unacknowledged:
        since, before = "", overdue_before
    else:
        since, before = window_start, None
    found = await _store.list_deprovisioning(
        conn, tenant, since=since, before=before, unacknowledged=unacknowledged, limit=limit
    )
    total = await _store.count_deprovisioning(
        conn, tenant, since=since, before=before, unacknowledged=unacknowledged
    )
    overdue = await _store.count_deprovisioning(
        conn, tenant, since="", before=overdue_before, unacknowledged=True
    )
    delays = await _store.ack_delays(conn, tenant, window_start)
    pending = await _store.pending_counts(conn, tenant, overdue_before)
    return {
        "tenant": tenant,
        "thresholdSeconds": threshold,
        "windowSeconds": window_seconds,
        "total": total,
        "unacknowledged": {"count": overdue, "byConsumer": pending},
        "timeToRevoke": {
            name: delay_summary(delays.get(name, [])) for name in sorted(set(pending) | set(delays))
        },
        "events": [
            {"seq": d.seq, "at": d.at, "resourceId": d.resource_id, "op": d.op, "acks": d.acks} for d in found
        ],
    }


async def tenant_report(
    engine: AsyncEngine, tenant: str, *, unacknowledged: bool, window_seconds: int, limit: int
) -> dict[str, Any]:
    """`report` for a tenant by name, in one read transaction; 404 for an unknown tenant."""
    async with read_transaction(engine) as conn:
        if not await _tenants.tenant_exists(conn, tenant):
            raise not_found(f"tenant {tenant} not found")
        settings = await _tenants.get_settings(conn, tenant)
        return await report(
            conn, tenant, settings, unacknowledged=unacknowledged, window_seconds=window_seconds, limit=limit
        )
