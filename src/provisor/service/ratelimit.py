"""Per-tenant rate limits: a token bucket per tenant, shared by all workers through the database.

Off unless the tenant sets `rate_limit_per_second` (> 0); `rate_limit_burst` defaults to one
second's worth (at least 1). A refused request gets 429 with an integer `Retry-After`. If the bucket
cannot be read (database trouble) the request is let through and a warning logged: the limiter
protects capacity, and refusing everything when the database hiccups would be worse.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from provisor.budget import outside_budget
from provisor.errors import ScimError
from provisor.storage import rate_buckets as store
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import RateBuckets
from provisor.storage.transactions import write_transaction
from provisor.telemetry.metrics import RATE_LIMITED

log = logging.getLogger("provisor.ratelimit")

#: Storage as the contract names it (storage/interfaces/).
_store: RateBuckets = store


class RateLimited(ScimError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(429, f"too many requests for this tenant; retry after {retry_after} s")
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


def limits_of(settings: dict[str, Any]) -> tuple[float, float] | None:
    """(rate per second, burst) from tenant settings, or None when the tenant is not limited."""
    try:
        rate = float(settings.get("rate_limit_per_second") or 0)
        burst_raw = settings.get("rate_limit_burst")
        burst = float(burst_raw) if burst_raw else max(1.0, math.ceil(rate))
    except (TypeError, ValueError):
        return None
    if not math.isfinite(rate) or rate <= 0:
        return None
    return rate, max(1.0, burst)


class RateLimiter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def check(self, tenant_id: str, settings: dict[str, Any]) -> None:
        limits = limits_of(settings)
        if limits is None:
            return
        rate, burst = limits
        try:
            with outside_budget():
                async with write_transaction(self.engine) as conn:
                    decision = await _store.take(conn, tenant_id, rate=rate, burst=burst, at=time.time())
        except Exception as exc:
            log.warning("rate limiter unavailable, letting the request through: %s", exc)
            return
        if not decision.allowed:
            RATE_LIMITED.inc()
            missing = max(0.0, 1.0 - decision.tokens)
            raise RateLimited(max(1, math.ceil(missing / rate)))
