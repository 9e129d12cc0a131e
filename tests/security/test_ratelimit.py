"""Per-tenant rate limits: 429 + integer Retry-After past the limit, other tenants unaffected,
and one shared budget across worker processes (the buckets live in the database)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from provisor.service.ratelimit import limits_of
from provisor.storage.rate_buckets import take
from provisor.storage.transactions import write_transaction
from tests.live.server import live_server
from tests.scim_client import Scim, assert_error, run_db, set_tenant_settings
from tests.security.helpers import other_tenant


def test_off_by_default(scim: Scim) -> None:
    assert limits_of({}) is None
    assert limits_of({"rate_limit_per_second": 0}) is None
    assert limits_of({"rate_limit_per_second": "junk"}) is None
    assert limits_of({"rate_limit_per_second": 2}) == (2.0, 2.0)
    assert limits_of({"rate_limit_per_second": 0.5}) == (0.5, 1.0)
    assert limits_of({"rate_limit_per_second": 5, "rate_limit_burst": 20}) == (5.0, 20.0)
    statuses = {scim.get("/Users").status_code for _ in range(30)}
    assert statuses == {200}


def test_tenant_past_its_limit_gets_429_and_others_do_not(scim: Scim) -> None:
    scim.settings(rate_limit_per_second=0.2, rate_limit_burst=3)
    bystander = other_tenant(scim)
    limited_too = other_tenant(scim)
    limited_too.settings(rate_limit_per_second=0.2, rate_limit_burst=3)
    statuses = [scim.get("/Users").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = scim.get("/Users")
    body = assert_error(refused, 429)
    assert "too many requests" in body["detail"]
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 5
    assert refused.headers["x-request-id"]
    # Writes are refused too, and change nothing.
    assert_error(scim.post("/Users", {"userName": "blocked"}), 429)
    # Another tenant, limited or not, is unaffected by this tenant's exhaustion.
    assert {bystander.get("/Users").status_code for _ in range(10)} == {200}
    assert [limited_too.get("/Users").status_code for _ in range(3)] == [200, 200, 200]
    # Lifting the limit takes effect once the worker hears of it (scim.settings waits for that).
    scim.settings(rate_limit_per_second=0)
    assert scim.get("/Users").json()["totalResults"] == 0


def test_tokens_refill_over_time(scim: Scim) -> None:
    scim.settings(rate_limit_per_second=20, rate_limit_burst=1)
    assert scim.get("/Users").status_code == 200
    assert scim.get("/Users").status_code == 429
    time.sleep(0.12)
    assert scim.get("/Users").status_code == 200


def test_bucket_arithmetic_in_sql(database_url: str, tenant_id: str) -> None:
    async def work(engine: object) -> list[tuple[bool, float]]:
        out = []
        for at in (100.0, 100.0, 100.0, 100.5, 101.0, 50.0):
            async with write_transaction(engine) as conn:  # type: ignore[arg-type]
                d = await take(conn, tenant_id, rate=2.0, burst=2.0, at=at)
            out.append((d.allowed, round(d.tokens, 6)))
        return out

    # full bucket of 2; third request at the same instant refused; 0.5 s later 1 token is back;
    # a clock going backwards (another host's skew) never adds tokens.
    assert run_db(database_url, work) == [
        (True, 1.0),
        (True, 0.0),
        (False, 0.0),
        (True, 0.0),
        (True, 0.0),
        (False, 0.0),
    ]


@pytest.mark.slow
def test_one_budget_across_two_workers(database_url: str, tenant_id: str) -> None:
    set_tenant_settings(database_url, tenant_id, rate_limit_per_second=1, rate_limit_burst=5)

    async def fire(base: str, headers: dict[str, str]) -> tuple[list[int], float, list[str], list[str]]:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            began = time.monotonic()
            responses = await asyncio.gather(*(client.get("/Users") for _ in range(30)))
            return (
                [r.status_code for r in responses],
                time.monotonic() - began,
                [r.headers.get("retry-after", "") for r in responses if r.status_code == 429],
                [r.text for r in responses if r.status_code not in (200, 429)],
            )

    # 30 requests at once may put more than PROVISOR_MAX_INFLIGHT on one worker; this is about 429.
    no_cap = {"PROVISOR_MAX_INFLIGHT": "0"}
    with live_server(database_url, tenant_id, workers=2, env=no_cap) as server:
        statuses, elapsed, retry_after, others = asyncio.run(fire(server.base_url, server.headers))
    allowed = statuses.count(200)
    assert set(statuses) == {200, 429}, (statuses, others, server.final_log)
    # Per-process buckets would admit up to 2 x 5; the shared bucket admits the burst plus refill.
    assert 5 <= allowed <= 5 + int(elapsed * 1) + 1, (allowed, elapsed)
    assert all(v.isdigit() and int(v) >= 1 for v in retry_after)
