"""`userName sw` latency on a fresh 100,000-user tenant: `python -m bench.prefix [--db sqlite|postgresql]`.

Seeds a fresh database through bench/seed.py and runs no ANALYZE (autovacuum may or may not have
run by the time of the requests: the point is a plan that does not depend on statistics), starts
`provisor serve` (one worker) and times `GET /Users?filter=userName sw "..."&count=100` for a
narrow prefix (100 users), a broad one (every user) and one matching nobody, plus the narrow
prefix with a cursor (the console's search), printing each one's median over sequential requests.
"""

from __future__ import annotations

import argparse
import statistics
import time
from urllib.parse import quote

import httpx

from bench.fresh import fresh_tenant, serving
from bench.seed import TenantPlan


def timed(client: httpx.Client, path: str, samples: int) -> tuple[float, int]:
    client.get(path)  # warm
    times = []
    total = 0
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text)
        total = response.json()["totalResults"]
    return statistics.median(times), total


def run(db: str, users: int, samples: int) -> list[tuple[str, float, int]]:
    plan = {"bench": TenantPlan(users)}
    with fresh_tenant(db, "prefix", plan, log=lambda *_: None) as fresh, serving(fresh.url) as root:
        token = fresh.token
        client = httpx.Client(
            base_url=f"{root}/scim/v2", headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        cases = [
            ("narrow (100 users)", "bench.user00500"),
            ("broad (every user)", "bench.user"),
            ("no match", "nobody"),
        ]
        out = []
        for label, prefix in cases:
            path = "/Users?count=100&filter=" + quote(f'userName sw "{prefix}"')
            out.append((label, *timed(client, path, samples)))
        path = "/Users?count=100&cursor=&filter=" + quote('userName sw "bench.user00500"')
        out.append(("narrow, cursor", *timed(client, path, samples)))
        return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prefix", description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], help="only this database")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    for db in [args.db] if args.db else ["sqlite", "postgresql"]:
        print(f"{db}: {args.users:,} users, no ANALYZE")
        for label, median, total in run(db, args.users, args.samples):
            print(f"  {label:22} median {median:8.1f} ms   totalResults {total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
