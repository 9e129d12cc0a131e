"""Roles from groups at scale (docs/roles.md): a member add to a mapped group of N members.

    python -m bench.roles [--members 100000] [--adds 200] [--db sqlite|postgresql] [--smoke]

Seeds a tenant with a group of N members and a second, unmapped group of the same size; maps the
first group to a role, running its background job to the end in this process (members/s); then
starts `provisor serve` and times PATCH member adds and removes on both groups over HTTP: the
mapped group's cost must not grow with its size (only the added member's roles are computed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx

from bench.fresh import fresh_tenant, serving
from bench.seed import TenantPlan
from provisor.service import roles
from provisor.storage.engine import create_engine
from provisor.storage.roles import RoleJob

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


async def _map_job(url: str, group_id: str) -> tuple[float, int, int]:
    """Map the group and run its job to the end: (seconds, batches, members)."""
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        result = await roles.change_mapping(engine, "bench", group_id, "reader", add=True)
        [first] = result.jobs
        job: RoleJob | None = first
        steps = 0
        while job is not None and job.state == "running":
            job = await roles.run_job_step(engine, "bench", job.id)
            steps += 1
        assert job is not None
        return time.perf_counter() - started, steps, job.processed
    finally:
        await engine.dispose()


def _time_patches(client: httpx.Client, group_id: str, users: list[str]) -> tuple[list[float], list[float]]:
    adds: list[float] = []
    removes: list[float] = []
    for user in users:
        for op, out in (("add", adds), ("remove", removes)):
            if op == "add":
                operation: dict[str, Any] = {"op": "add", "path": "members", "value": [{"value": user}]}
            else:
                operation = {"op": "remove", "path": f'members[value eq "{user}"]'}
            started = time.perf_counter()
            got = client.patch(f"/Groups/{group_id}", json={"schemas": [PATCH_OP], "Operations": [operation]})
            out.append((time.perf_counter() - started) * 1000)
            assert got.status_code in (200, 204), got.text
    return adds, removes


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered):6.2f} ms  p99 {p99:6.2f} ms"


def run(db: str, members: int, adds: int) -> None:
    plan = {"bench": TenantPlan(users=2 * members + adds, groups={"mapped": members, "plain": members})}
    with fresh_tenant(db, "roles", plan) as fresh:
        seeded = fresh.seeded
        spare = [uid for uid, _ in seeded.users[seeded.spare_from :]]
        seconds, steps, processed = asyncio.run(_map_job(fresh.url, seeded.groups["mapped"]))
        print(
            f"{db}: map job over {processed:,} members in {steps} batches: {seconds:.1f} s "
            f"({processed / seconds:,.0f} members/s, one role_granted each)"
        )
        with serving(fresh.url) as root:
            headers = {"Authorization": f"Bearer {fresh.token}", "Content-Type": "application/scim+json"}
            with httpx.Client(base_url=f"{root}/scim/v2", headers=headers, timeout=60) as client:
                for label in ("plain", "mapped"):
                    add, remove = _time_patches(client, seeded.groups[label], spare)
                    print(f"{db}: {label:6} group of {members:,}: add {_ms(add)} | remove {_ms(remove)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--adds", type=int, default=200)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--smoke", action="store_true", help="1,000 members, 20 adds: a quick check")
    args = parser.parse_args()
    members, adds = (1000, 20) if args.smoke else (args.members, args.adds)
    for db in args.db or ("sqlite", "postgresql"):
        run(db, members, adds)


if __name__ == "__main__":
    main()
