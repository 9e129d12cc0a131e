"""Console page latency on a 100,000-user tenant: `python -m bench.console [--db sqlite|postgresql]`.

Seeds a fresh database through bench/seed.py (100k users, a group holding all of them), writes a
few hundred users and changes over HTTP so the request log, events and deliveries hold rows, then
starts `provisor serve` (one worker) and measures each console page's p50 / p95 over sequential
requests from a signed-in client. The target is p95 <= 150 ms for every list and detail page.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from bench.fresh import fresh_tenant, serving
from bench.seed import TenantPlan

TARGET_MS = 150.0


def measure(client: httpx.Client, path: str, samples: int) -> tuple[float, float]:
    client.get(path)  # warm
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def run(db: str, users: int, samples: int, keep: bool = False) -> list[tuple[str, float, float]]:
    plan = {"bench": TenantPlan(users, {"everyone": users})}
    with fresh_tenant(db, "console", plan) as fresh, serving(fresh.url) as root:
        url, token, admin, seeded = fresh.url, fresh.token, fresh.admin, fresh.seeded
        scim = httpx.Client(base_url=f"{root}/scim/v2", headers={"Authorization": f"Bearer {token}"})
        made = ""
        for n in range(300):
            body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"http{n}@x.test"}
            made = scim.post("/Users", json=body).json()["id"]
        time.sleep(1)  # the request log is written in batches
        client = httpx.Client(base_url=root, timeout=30)
        assert client.post("/console/login", data={"token": admin}).status_code == 303
        rows = client.get("/console/requests?tenant=bench&method=POST").text
        request_id = rows.split('href="/console/requests/', 1)[1].split('"', 1)[0]
        first_user, group = seeded.users[users // 2][0], seeded.groups["everyone"]
        cursor_page = client.get("/console/users?tenant=bench").text
        cursor = cursor_page.split('rel="next" href="?', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        pages = [
            ("overview", "/console/"),
            ("requests", "/console/requests"),
            ("requests (filtered)", "/console/requests?tenant=bench&status=2&method=POST&path=Users"),
            ("request detail", f"/console/requests/{request_id}"),
            ("users", "/console/users?tenant=bench"),
            ("users (next page)", f"/console/users?{cursor}"),
            ("users (search)", "/console/users?tenant=bench&q=bench.user00500"),
            ("users (filter)", "/console/users?tenant=bench&filter=userName%20eq%20%22http7%40x.test%22"),
            ("user detail", f"/console/users/bench/{first_user}"),
            ("user detail (HTTP-made)", f"/console/users/bench/{made}"),
            ("groups", "/console/groups?tenant=bench"),
            ("group detail (100k members)", f"/console/groups/bench/{group}"),
            ("events", "/console/events"),
            ("webhooks", "/console/webhooks"),
            ("tokens", "/console/tokens"),
            ("tenants", "/console/tenants"),
        ]
        results = [(label, *measure(client, path, samples)) for label, path in pages]
        if keep:
            print(f"kept: {url} (admin token {admin}, SCIM token {token}); serving at {root}")
            input("press Enter to stop the server and drop the database ")
        return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], help="only this database")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep serving until Enter (for profiling)")
    args = parser.parse_args()
    failed = False
    for db in [args.db] if args.db else ["sqlite", "postgresql"]:
        print(f"{db}: {args.users:,} users")
        for label, p50, p95 in run(db, args.users, args.samples, args.keep):
            mark = "ok  " if p95 <= TARGET_MS else "SLOW"
            failed |= p95 > TARGET_MS
            print(f"  {mark} {label:30} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
