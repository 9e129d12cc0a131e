"""`userName sw` latency on a fresh 100,000-user tenant: `python -m bench.prefix [--db sqlite|postgresql]`.

Seeds a fresh database through bench/seed.py and runs no ANALYZE (autovacuum may or may not have
run by the time of the requests: the point is a plan that does not depend on statistics), starts
`provisor serve` (one worker) and times `GET /Users?filter=userName sw "..."&count=100` for a
narrow prefix (100 users), a broad one (every user) and one matching nobody, plus the narrow
prefix with a cursor (the console's search), printing each one's median over sequential requests.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx

from bench.console import PG_ADMIN_URL, PROVISOR, _pg, cli, free_port
from bench.seed import TenantPlan, seed


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
    name = f"provisor_prefix_bench_{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="prefix-bench-"))
    if db == "sqlite":
        url = f"sqlite:///{workdir / 'prefix.db'}"
    else:
        asyncio.run(_pg(f"CREATE DATABASE {name}"))
        url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    server = None
    try:
        cli("migrate", "--database-url", url)
        cli("tenant", "create", "bench", "--database-url", url)
        token = cli("token", "create", "--tenant", "bench", "--name", "idp", "--database-url", url)
        asyncio.run(seed(url, {"bench": TenantPlan(users)}, log=lambda *_: None))
        port = free_port()
        server = subprocess.Popen(
            [str(PROVISOR), "serve", "--port", str(port), "--database-url", url, "--workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        root = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{root}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
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
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if db == "postgresql":
            asyncio.run(_pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        shutil.rmtree(workdir, ignore_errors=True)


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
