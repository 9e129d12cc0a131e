"""Console page latency on a 100,000-user tenant: `python -m bench.console [--db sqlite|postgresql]`.

Seeds a fresh database through bench/seed.py (100k users, a group holding all of them), writes a
few hundred users and changes over HTTP so the request log, events and deliveries hold rows, then
starts `provisor serve` (one worker) and measures each console page's p50 / p95 over sequential
requests from a signed-in client. The target is p95 <= 150 ms for every list and detail page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.seed import TenantPlan, seed

PROVISOR = Path(sys.executable).with_name("provisor")
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://root@127.0.0.1:5432/test")
TARGET_MS = 150.0


def cli(*args: str) -> str:
    done = subprocess.run([str(PROVISOR), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


async def _pg(statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    name = f"provisor_console_bench_{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="console-bench-"))
    if db == "sqlite":
        url = f"sqlite:///{workdir / 'console.db'}"
    else:
        asyncio.run(_pg(f"CREATE DATABASE {name}"))
        url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    server = None
    try:
        cli("migrate", "--database-url", url)
        cli("tenant", "create", "bench", "--database-url", url)  # tenants are made on purpose only
        token = cli("token", "create", "--tenant", "bench", "--name", "idp", "--database-url", url)
        admin = cli("token", "create", "--admin", "--name", "operator", "--database-url", url)
        seeded = asyncio.run(seed(url, {"bench": TenantPlan(users, {"everyone": users})}, log=print))["bench"]
        port = free_port()
        server = subprocess.Popen(
            [str(PROVISOR), "serve", "--port", str(port), "--database-url", url, "--workers", "1"],
            env={**os.environ, "PROVISOR_LOG_LEVEL": "warning"},
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
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if db == "postgresql":
            asyncio.run(_pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        shutil.rmtree(workdir, ignore_errors=True)


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
