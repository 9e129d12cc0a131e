"""The bench's application-side flows (docs/roles.md, docs/reconciliation.md), driven over HTTP
against a running `provisor serve`, with the database read directly only to count what was written.

- `map_job`: map (unmap) a group to a role through the admin API and follow the background job's
  progress through `GET /admin/v1/roles/jobs` until it is done: members/s, batches, duration.
- `member_adds`: single-member PATCH adds to mapped groups of different sizes, timed one by one,
  with what each add wrote (events by kind; on PostgreSQL, the database's own counters of
  transactions, rows and buffers touched): the evidence that the cost does not grow with the group.
- `snapshot`: `GET /admin/v1/snapshot` streamed to the end: time, bytes, rows/s.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from provisor.storage.engine import create_engine

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
#: PROVISOR_ROLE_JOB_BATCH's default: the bench's servers run with it.
JOB_BATCH = 1000
#: pg_stat_database lags a backend's work by up to a second (PostgreSQL 15 flushes a backend's
#: counters when it goes idle, at most once a second): wait this long before reading them.
PG_STATS_SETTLE = 2.5
PG_COUNTERS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "tup_returned", "tup_fetched")


class FlowError(Exception):
    pass


def _query(url: str, sql: str, **params: Any) -> list[Any]:
    async def work() -> list[Any]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text(sql), params)).one())
        finally:
            await engine.dispose()

    return asyncio.run(work())


def head_seq(url: str) -> int:
    return int(_query(url, "SELECT coalesce(max(seq), 0) FROM events")[0])


def events_after(url: str, tenant: str, after: int, op: str) -> tuple[int, int]:
    """(events of `op`, distinct commit instants among them) after seq `after`: a role job's batch
    writes all its events with one `at`, so the second number counts the batches that wrote events."""
    count, instants = _query(
        url,
        "SELECT count(*), count(DISTINCT at) FROM events WHERE tenant_id = :t AND seq > :s AND op = :op",
        t=tenant,
        s=after,
        op=op,
    )
    return int(count), int(instants)


def ops_between(url: str, tenant: str, after: int, upto: int) -> dict[str, int]:
    async def work() -> dict[str, int]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT op, count(*) FROM events WHERE tenant_id = :t AND seq > :s AND seq <= :u "
                        "GROUP BY op"
                    ),
                    {"t": tenant, "s": after, "u": upto},
                )
                return {str(op): int(n) for op, n in rows}
        finally:
            await engine.dispose()

    return asyncio.run(work())


def pg_counters(url: str) -> dict[str, int]:
    """This database's cumulative counters (pg_stat_database), after letting backends flush theirs."""
    time.sleep(PG_STATS_SETTLE)
    columns = ", ".join(PG_COUNTERS)
    values = _query(
        url,
        f"SELECT {columns}, blks_hit + blks_read FROM pg_stat_database WHERE datname = current_database()",
    )
    return dict(zip([*PG_COUNTERS, "buffers"], (int(v) for v in values), strict=True))


def _admin(root: str, admin: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{root}/admin/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=120
    )


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class JobOutcome:
    action: str
    members: int
    seconds: float  # the job's own span: created -> last batch committed
    wall: float  # from the admin request to the poll that saw it done
    batches: int  # batches that wrote events (distinct commit instants)
    events: int
    #: (seconds since the request, processed) as the admin API showed them while the job ran
    progress: list[tuple[float, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.members / self.seconds if self.seconds > 0 else 0.0

    def note(self) -> str:
        seen = [p for _, p in self.progress if 0 < p < self.members]
        shown = ", ".join(f"{p:,}" for p in seen[:: max(1, len(seen) // 4)][:5])
        return (
            f"{self.members:,} members, {self.batches:,} batches of up to {JOB_BATCH:,}, "
            f"{self.events:,} {'role_granted' if self.action == 'map' else 'role_revoked'} events; "
            f"progress read {len(seen)} times while running (processed {shown or '-'})"
        )


def map_job(
    root: str, admin: str, url: str, tenant: str, group_id: str, role: str, *, add: bool
) -> JobOutcome:
    """Map (`add`) or unmap the group and follow its job to the end through the admin API."""
    op = "role_granted" if add else "role_revoked"
    before = head_seq(url)
    action = "map" if add else "unmap"
    with _admin(root, admin) as client:
        started = time.perf_counter()
        params = {"tenant": tenant, "group": group_id, "role": role}
        answer = client.request("PUT" if add else "DELETE", "/roles", params=params)
        if answer.status_code not in ((201,) if add else (204,)):
            raise FlowError(f"{action}: {answer.status_code} {answer.text[:200]}")
        progress: list[tuple[float, int]] = []
        job: dict[str, Any] | None = None
        while True:
            jobs = client.get("/roles/jobs", params={"tenant": tenant}).json()["jobs"]
            mine = [j for j in jobs if j["group"] == group_id and j["role"] == role and j["action"] == action]
            if not mine:
                raise FlowError(f"{action}: no job listed for the group")
            job = mine[-1]
            progress.append((time.perf_counter() - started, int(job["processed"])))
            if job["state"] != "running":
                break
            if time.perf_counter() - started > 3600:
                raise FlowError(f"{action}: job still running after an hour ({job['processed']:,} done)")
            time.sleep(0.5)
        wall = time.perf_counter() - started
    if job["state"] != "done" or job["processed"] != job["total"]:
        raise FlowError(f"{action}: job ended {job['state']} at {job['processed']} of {job['total']}")
    events, batches = events_after(url, tenant, before, op)
    if events != job["total"]:
        raise FlowError(f"{action}: {events} {op} events for {job['total']} members")
    seconds = (_instant(job["updated"]) - _instant(job["created"])).total_seconds()
    return JobOutcome(action, int(job["total"]), seconds or wall, wall, batches, events, progress)


@dataclass
class AddFigures:
    members: int  # the group's size
    latencies_ms: list[float] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)  # op -> events written by all the adds
    #: PostgreSQL: per block of adds, (adds, counter deltas over the block net of the background)
    blocks: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]

    def counters(self) -> dict[str, float] | None:
        """Per add, in the block that touched the fewest buffers per add: the counters are the whole
        database's, so a block can also hold autovacuum's work; the least disturbed block is the
        closest to the adds' own cost. The workers' polling is already taken out (idle interval)."""
        if not self.blocks:
            return None
        n, best = min(self.blocks, key=lambda b: b[1]["buffers"] / b[0])
        return {k: v / n for k, v in best.items()}

    def per_add(self) -> dict[str, float]:
        n = len(self.latencies_ms)
        out = {f"events {op}": v / n for op, v in sorted(self.events.items())}
        return out | (self.counters() or {})


def ensure_mapped(root: str, admin: str, url: str, tenant: str, group_id: str, role: str) -> None:
    """The mapping in place with its job done (a scenario run alone must not depend on another)."""
    with _admin(root, admin) as client:
        answer = client.put("/roles", params={"tenant": tenant, "group": group_id, "role": role})
        if answer.status_code not in (200, 201):
            raise FlowError(f"map: {answer.status_code} {answer.text[:200]}")
        deadline = time.monotonic() + 3600
        while any(
            j["state"] == "running"
            for j in client.get("/roles/jobs", params={"tenant": tenant}).json()["jobs"]
        ):
            if time.monotonic() > deadline:
                raise FlowError("a role job is still running after an hour")
            time.sleep(0.5)


def member_adds(
    root: str, token: str, url: str, tenant: str, groups: dict[str, str], adds: int, prefix: str, pg: bool
) -> tuple[dict[str, AddFigures], dict[str, int] | None]:
    """`adds` fresh users per group (created first, untimed), each added alone to its group. The adds
    go in blocks, alternating between the groups (the machine's speed drifts), with the database's
    counters read between blocks on PostgreSQL. Also returns the counters of an idle interval as
    long as a block's settling: the background every block holds too."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    out = {size: AddFigures(int(size)) for size in groups}
    blocks = max(1, min(4, adds // 25))  # each costs two counter reads (PG_STATS_SETTLE) on PostgreSQL
    idle: dict[str, int] | None = None
    with httpx.Client(base_url=f"{root}/scim/v2", headers=headers, timeout=120) as client:
        users: dict[str, list[str]] = {}
        for size in groups:
            users[size] = []
            for n in range(adds):
                body = {"schemas": [USER_SCHEMA], "userName": f"{prefix}.roleadd{size}.{n}@example.com"}
                made = client.post("/Users", json=body)
                if made.status_code != 201:
                    raise FlowError(f"POST /Users: {made.status_code} {made.text[:200]}")
                users[size].append(made.json()["id"])
        counters = pg_counters(url) if pg else None
        read_at = time.perf_counter()
        idle_seconds = 1.0
        if counters is not None:
            later = pg_counters(url)
            idle = {k: later[k] - counters[k] for k in later}
            idle_seconds = time.perf_counter() - read_at
            counters, read_at = later, time.perf_counter()
        for block in range(blocks):
            for size, group_id in groups.items():
                chunk = users[size][block::blocks]
                before = head_seq(url)
                for uid in chunk:
                    patch = {
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
                    }
                    t = time.perf_counter()
                    answer = client.patch(f"/Groups/{group_id}", json=patch)
                    out[size].latencies_ms.append((time.perf_counter() - t) * 1000)
                    if answer.status_code not in (200, 204):
                        raise FlowError(f"PATCH add member: {answer.status_code} {answer.text[:200]}")
                for op, n in ops_between(url, tenant, before, head_seq(url)).items():
                    out[size].events[op] = out[size].events.get(op, 0) + n
                if counters is not None and idle is not None:
                    later = pg_counters(url)
                    # What the background (workers' polls) did meanwhile, at the idle interval's pace
                    share = (time.perf_counter() - read_at) / idle_seconds
                    net = {k: max(0.0, later[k] - counters[k] - idle[k] * share) for k in later}
                    out[size].blocks.append((len(chunk), net))
                    counters, read_at = later, time.perf_counter()
    return out, idle


@dataclass
class SnapshotFigures:
    seconds: float
    first_byte: float
    bytes: int
    users: int
    groups: int
    memberships: int
    seq: int

    @property
    def rows(self) -> int:
        return self.users + self.groups


def snapshot(root: str, admin: str, tenant: str) -> SnapshotFigures:
    """Stream the tenant's snapshot to the end (timed), then count what came (untimed)."""
    chunks: list[bytes] = []
    with _admin(root, admin) as client:
        started = time.perf_counter()
        first = 0.0
        with client.stream("GET", "/snapshot", params={"tenant": tenant}) as response:
            if response.status_code != 200:
                raise FlowError(f"snapshot: {response.status_code} {response.read()[:200]!r}")
            for chunk in response.iter_raw():
                if not first:
                    first = time.perf_counter() - started
                chunks.append(chunk)
        seconds = time.perf_counter() - started
    body = b"".join(chunks)
    lines = [orjson.loads(line) for line in body.splitlines() if line]
    head, rows = lines[0], lines[1:]
    users = sum(1 for r in rows if r["meta"]["resourceType"] == "User")
    groups = len(rows) - users
    memberships = sum(len(r.get("members", ())) for r in rows)
    return SnapshotFigures(seconds, first, len(body), users, groups, memberships, int(head["seq"]))


def batches_expected(members: int) -> int:
    return max(1, math.ceil(members / JOB_BATCH))
