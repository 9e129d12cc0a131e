"""Python (asyncio) drivers for the multi-step scenarios wrk cannot express.

They speak HTTP through bench/http1.py, a lean keep-alive client: with httpx the driver itself used
most of one of the machine's two cores. The single 1M-member group read keeps httpx (one request).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.http1 import Client, HttpError, Response
from bench.seed import user_body, user_name

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


@dataclass
class Outcome:
    ok: bool
    seconds: float
    requests: int
    units: int  # users processed
    latencies: list[float] = field(default_factory=list)
    note: str = ""

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class Failed(Exception):
    pass


def _client(base: str, token: str, timeout: float = 60.0) -> Client:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    return Client(base, headers, max_connections=16, timeout=timeout)


async def _call(client: Client, lat: list[float], method: str, url: str, **kw: Any) -> Response:
    t = time.perf_counter()
    response = await client.request(method, url, **kw)
    lat.append(time.perf_counter() - t)
    if response.status_code >= 300:
        raise Failed(f"{method} {url} -> {response.status_code}: {response.text[:300]}")
    return response


async def initial_sync(
    base: str,
    token: str,
    users: int,
    prefix: str,
    *,
    concurrency: int = 8,
    group_size: int = 1000,
    patch_batch: int = 100,
) -> Outcome:
    """What Okta does on first assignment: for each user `filter=userName eq` (expect none), then POST;
    then group push: POST each group empty, and PATCH its members in batches."""
    lat: list[float] = []
    ids: list[str | None] = [None] * users
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(users):
        queue.put_nowait(n)
    async with _client(base, token) as client:
        started = time.perf_counter()

        async def user_worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                name = f"{prefix}.sync{n:06d}@example.com"
                found = await _call(client, lat, "GET", "/Users", params={"filter": f'userName eq "{name}"'})
                if found.json().get("totalResults") != 0:
                    raise Failed(f"{name} unexpectedly exists")
                created = await _call(client, lat, "POST", "/Users", json=user_body(name, n))
                ids[n] = created.json()["id"]

        try:
            await asyncio.gather(*(user_worker() for _ in range(concurrency)))
            chunks = [ids[i : i + group_size] for i in range(0, users, group_size)]
            gate = asyncio.Semaphore(concurrency)

            async def push_group(k: int, members: list[str | None]) -> None:
                async with gate:
                    body = {
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": f"{prefix} sync group {k}",
                    }
                    gid = (await _call(client, lat, "POST", "/Groups", json=body)).json()["id"]
                    for i in range(0, len(members), patch_batch):
                        patch = {
                            "schemas": [PATCH_SCHEMA],
                            "Operations": [
                                {
                                    "op": "add",
                                    "path": "members",
                                    "value": [{"value": m} for m in members[i : i + patch_batch]],
                                }
                            ],
                        }
                        await _call(client, lat, "PATCH", f"/Groups/{gid}", json=patch)

            await asyncio.gather(*(push_group(k, c) for k, c in enumerate(chunks)))
        except (Failed, HttpError) as exc:
            return Outcome(False, time.perf_counter() - started, len(lat), users, lat, str(exc))
        return Outcome(True, time.perf_counter() - started, len(lat), users, lat)


async def create_users(
    base: str, token: str, users: int, prefix: str, *, concurrency: int = 16
) -> tuple[Outcome, list[tuple[str, str]]]:
    """POST `users` users as fast as `concurrency` connections go (an IdP's first push, without the
    existence checks): the day-one scenario's load. Returns the outcome and (id, userName) per user."""
    lat: list[float] = []
    made: list[tuple[str, str]] = []
    pending = iter(range(users))
    async with _client(base, token) as client:
        started = time.perf_counter()

        async def worker() -> None:
            for n in pending:  # one shared iterator: each n is taken by exactly one worker
                name = user_name(prefix, n)
                created = await _call(client, lat, "POST", "/Users", json=user_body(name, n))
                made.append((created.json()["id"], name))

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        except (Failed, HttpError) as exc:
            return Outcome(False, time.perf_counter() - started, len(lat), len(made), lat, str(exc)), made
        return Outcome(True, time.perf_counter() - started, len(lat), users, lat), made


async def bulk_import(base: str, token: str, users: int, prefix: str, *, concurrency: int = 2) -> Outcome:
    """POST /Bulk with as many operations per request as the server announces (at most 1000)."""
    lat: list[float] = []
    async with _client(base, token, timeout=300.0) as client:
        config = (await client.get("/ServiceProviderConfig")).json()
        bulk = config.get("bulk") or {}
        per_request = max(1, min(1000, int(bulk.get("maxOperations") or 1000)))
        max_payload = int(bulk.get("maxPayloadSize") or 1_048_576)
        batches: list[list[dict[str, Any]]] = []
        for start in range(0, users, per_request):
            batches.append(
                [
                    {
                        "method": "POST",
                        "path": "/Users",
                        "bulkId": f"u{n}",
                        "data": user_body(f"{prefix}.bulk{n:06d}@example.com", n),
                    }
                    for n in range(start, min(users, start + per_request))
                ]
            )
        started = time.perf_counter()
        probe = await client.post("/Bulk", json={"schemas": [BULK_SCHEMA], "Operations": []})
        if probe.status_code == 501:
            return Outcome(False, 0.0, 1, 0, note="n/a (501)")
        queue = list(reversed(batches))
        errors: list[str] = []

        async def worker() -> None:
            while queue and not errors:
                ops = queue.pop()
                body = {"schemas": [BULK_SCHEMA], "failOnErrors": 1, "Operations": ops}
                t = time.perf_counter()
                response = await client.post("/Bulk", json=body)
                lat.append(time.perf_counter() - t)
                if response.status_code != 200:
                    errors.append(f"/Bulk -> {response.status_code}: {response.text[:300]}")
                    return
                results = response.json().get("Operations", [])
                bad = [r for r in results if not str(r.get("status", "")).startswith("2")]
                if bad or len(results) != len(ops):
                    errors.append(f"/Bulk: {len(bad)} failed operations of {len(results)}: {bad[:1]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        note = f"{per_request} ops/request, payload limit {max_payload:,} B"
        if errors:
            return Outcome(False, seconds, len(lat), users, lat, errors[0])
        return Outcome(True, seconds, len(lat), users, lat, note)


async def single_get(base: str, token: str, path: str, limit_seconds: float = 600.0) -> Outcome:
    lat: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=limit_seconds) as client:
        started = time.perf_counter()
        try:
            t = time.perf_counter()
            response = await client.get(path)
            lat.append(time.perf_counter() - t)
            if response.status_code >= 300:
                raise Failed(f"GET {path} -> {response.status_code}: {response.text[:300]}")
        except (Failed, httpx.HTTPError) as exc:
            return Outcome(False, time.perf_counter() - started, 1, 0, lat, str(exc)[:300])
        size = len(response.content)
        return Outcome(True, time.perf_counter() - started, 1, 1, lat, f"{size / 1e6:.1f} MB body")
