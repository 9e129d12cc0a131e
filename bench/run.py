"""`make bench` / `make bench-smoke`: start real servers, seed them, drive them, print one table.

    python -m bench.run [--smoke] [--only SCENARIO] [--db sqlite|postgresql] [--no-peer]

Targets: Provisor (`provisor serve --workers 2`) on SQLite and on PostgreSQL, and the reference
in-memory `scim2-server` (one worker: its store lives in one process) as the peer. Single-request
scenarios are driven by wrk (Lua scripts in bench/wrk/); multi-step flows by asyncio + httpx.
Results go to the terminal (rich) and to bench/results/*.json. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import app_flows, ceiling, cpu, drivers, reclaim, stats
from bench.seed import TenantPlan, TenantSeed, seed
from bench.targets import sections as target_sections

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
PEER_VENV = BENCH / ".peer-venv"
LUA = BENCH / "wrk" / "scim.lua"
PROVISOR = Path(sys.executable).parent / "provisor"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://root@127.0.0.1:5432/test")
#: The bench's database name (and SQLite file name): two runs sharing a PostgreSQL server need two.
DB_NAME = os.environ.get("BENCH_DB_NAME", "provisor_bench")
PEER_REQUIREMENTS = ["scim2-server==0.8.3", "uvicorn==0.54.0"]
PORTS = {"sqlite": 18181, "postgresql": 18182, "peer": 18183, "ceiling": 18184}

console = Console(width=max(200, shutil.get_terminal_size((200, 50)).columns))


# ---- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    users: int  # users in the main tenant (filter / get / list run on these)
    groups: tuple[int, int, int]  # the small / medium / large group
    spare: int  # extra users in the large group's tenant, to add to it
    sync_users: int
    bulk_users: int
    duration: int  # seconds per wrk scenario
    full_group_read: bool
    #: Roles (docs/roles.md): a second group as large as the large one, and a small one, both mapped to
    #: a role; single-member adds to each (the large group's cost must not grow with its size).
    role_small: int = 1_000
    role_adds: int = 200


FULL = Sizes(100_000, (100, 10_000, 1_000_000), 20_000, 10_000, 10_000, 8, True)
SMOKE = Sizes(2_000, (20, 200, 2_000), 500, 200, 200, 2, True)
SMOKE = replace(SMOKE, role_small=100, role_adds=10)

#: (name, label, kind, mode, concurrency); kind: wrk | sync | bulk | full_get | roles | snapshot
SCENARIOS: list[tuple[str, str, str, str, int]] = [
    ("get_user", "GET /Users/{{id}}", "wrk", "get", 16),
    ("filter_username", "GET /Users?filter=userName eq", "wrk", "filter", 16),
    ("list_page", "GET /Users?startIndex=random&count=100", "wrk", "list", 16),
    (
        "group_get_large_excl",
        "GET /Groups/{{id}}?excludedAttributes=members, group {large}",
        "wrk",
        "group_get",
        16,
    ),
    ("create_user", "POST /Users", "wrk", "create", 16),
    ("patch_user", "PATCH /Users/{{id}} (replace 2 attrs)", "wrk", "patch", 16),
    ("put_user", "PUT /Users/{{id}}", "wrk", "put", 16),
    ("member_add_small", "PATCH group {small}: add 1 member", "wrk", "member_add", 4),
    ("member_remove_small", "PATCH group {small}: remove 1 member", "wrk", "member_remove", 4),
    ("member_add_medium", "PATCH group {medium}: add 1 member", "wrk", "member_add", 4),
    ("member_remove_medium", "PATCH group {medium}: remove 1 member", "wrk", "member_remove", 4),
    ("member_add_large", "PATCH group {large}: add 1 member", "wrk", "member_add", 4),
    ("member_remove_large", "PATCH group {large}: remove 1 member", "wrk", "member_remove", 4),
    ("initial_sync", "Okta-style initial sync of {sync} users", "sync", "", 8),
    ("bulk_import", "POST /Bulk import of {bulk} users", "bulk", "", 2),
    (
        "group_get_large_full",
        "GET /Groups/{{id}} with all members, group {large} (1 request)",
        "full_get",
        "",
        1,
    ),
    # bench/app_flows.py: the application-side features of docs/roles.md and docs/reconciliation.md
    ("role_map_large", "map group {role_large} to a role: background job", "roles", "map", 1),
    (
        "role_member_add",
        "PATCH mapped group {role_large}: add 1 member (vs mapped group {role_small})",
        "roles",
        "add",
        1,
    ),
    ("role_unmap_large", "unmap group {role_large} from its role: background job", "roles", "unmap", 1),
    ("snapshot", "GET /admin/v1/snapshot of the {users}-user tenant (NDJSON)", "snapshot", "", 1),
]
SCENARIO_NAMES = [s[0] for s in SCENARIOS]


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def label(template: str, sizes: Sizes) -> str:
    small, medium, large = sizes.groups
    return template.format(
        small=f"of {human(small)}",
        medium=f"of {human(medium)}",
        large=f"of {human(large)}",
        sync=f"{sizes.sync_users:,}",
        bulk=f"{sizes.bulk_users:,}",
        role_large=f"of {human(large)}",
        role_small=f"of {human(sizes.role_small)}",
        users=human(sizes.users),
    )


@dataclass
class Result:
    scenario: str
    target: str
    ok: bool
    status: str  # "ok" | "n/a (...)" | error text
    concurrency: int = 0
    rps: float | None = None  # requests/s (wrk) or users/s (flows)
    unit: str = "req/s"
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    seconds: float = 0.0
    rss_mb: list[float] = field(default_factory=list)  # peak RSS (VmHWM) per worker during the scenario
    note: str = ""
    #: 1-minute load average when the scenario started: the bench shares its cores with everything else.
    load: float = 0.0
    #: CPU time the server's worker processes spent per request (user + system), in ms: unlike
    #: requests/s this barely depends on what else runs on the machine.
    cpu_ms: float | None = None
    #: Share of the machine's CPU time that its hypervisor gave to other guests during the scenario
    #: (steal, %): on a shared host the 2 cores may be far fewer, and throughput falls with them.
    steal: float | None = None
    #: Figures of the scenarios that measure more than a rate (roles, snapshot): name -> value.
    extra: dict[str, Any] = field(default_factory=dict)
    #: When the scenario started (UTC, ISO 8601): tells which scenarios ran before autovacuum's ANALYZE.
    at: str = ""


# ---- processes -------------------------------------------------------------------------------------


def ensure_tools(need_peer: bool) -> bool:
    if shutil.which("wrk") is None:
        console.print("[yellow]wrk missing: installing it with apt-get[/]")
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        if shutil.which("wrk") is None:
            subprocess.run(["apt-get", "update"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    if not need_peer:
        return False
    python = PEER_VENV / "bin" / "python"
    try:
        if not python.exists():
            console.print("[yellow]creating bench/.peer-venv for scim2-server[/]")
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        check = subprocess.run([str(python), "-c", "import scim2_server, uvicorn"], capture_output=True)
        if check.returncode != 0:
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS], check=True)
        return True
    except (subprocess.CalledProcessError, OSError) as exc:
        console.print(f"[yellow]peer (scim2-server) unavailable, comparison skipped: {exc}[/]")
        return False


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            out.extend(int(c) for c in text)
    except OSError:
        pass
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_jiffies() -> tuple[int, int]:
    """(stolen, all) CPU time of the whole machine since boot, in clock ticks (/proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already in user
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_since(before: tuple[int, int]) -> float | None:
    """Percent of the machine's CPU time stolen since `before` (None: not measurable here)."""
    stolen, total = cpu_jiffies()
    elapsed = total - before[1]
    return None if elapsed <= 0 else round(100.0 * (stolen - before[0]) / elapsed, 1)


def drain(pids: list[int], timeout: float = 180.0) -> float:
    """Wait until the server has finished the requests wrk left in flight (a slow server keeps
    working on them after wrk stops), so they do not bleed into the next scenario."""
    started = time.monotonic()
    last = cpu_seconds(pids)
    while time.monotonic() - started < timeout:
        time.sleep(0.5)
        now = cpu_seconds(pids)
        if now - last < 0.05:
            break
        last = now
    return time.monotonic() - started


def reset_hwm(pid: int) -> None:
    # "5" resets the peak RSS (Linux >= 4.0); it needs ownership of the process.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


class Server:
    def __init__(
        self, name: str, argv: list[str], port: int, env: dict[str, str], base_path: str, log: Path
    ) -> None:
        self.name, self.port, self.base_path = name, port, base_path
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(ROOT),
        )
        self.workers: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str, timeout: float, expected_workers: int) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            try:
                response = httpx.get(self.url + path, timeout=2.0)
                if response.status_code < 500:
                    self.workers = self._find_workers(expected_workers)
                    if len(self.workers) >= expected_workers and self._listening() >= expected_workers:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log}")

    def _listening(self) -> int:
        """Listening sockets on the port: Provisor's workers each have one (SO_REUSEPORT), and a
        run must not start while only some listen (the first would get every connection)."""
        if self.name.startswith("peer"):
            return 1 << 30
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
        return sum(
            1 for r in rows if r.split()[3] == "0A" and int(r.split()[1].split(":")[1], 16) == self.port
        )

    def _find_workers(self, expected: int) -> list[int]:
        if expected == 1 and not children(self.proc.pid):
            return [self.proc.pid]
        found = [c for c in children(self.proc.pid) if "spawn_main" in cmdline(c)]
        return found or [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log_file.close()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def pick_port(preferred: int) -> int:
    """`preferred` when nothing listens there, else a free port (a stray server must not fail a run)."""
    if port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    console.print(f"[yellow]port {preferred} is busy; using {port}[/]")
    return port


# ---- targets ---------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str  # sqlite | postgresql | peer
    server: Server
    token: str  # main tenant
    big_token: str  # tenant holding the large group
    users_file: Path
    spare_small: Path  # member pool for the small / medium groups
    spare_large: Path | None
    groups: dict[str, str]  # small / medium / large -> group id
    list_pages: int
    seed_seconds: float
    workers: int
    admin: str = ""  # an admin token (admin API scenarios)
    url: str = ""  # the database (to count what a scenario wrote)


def provisor_cli(*args: str) -> str:
    done = subprocess.run([str(PROVISOR), *args], capture_output=True, text=True, check=True, cwd=str(ROOT))
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


async def _pg_admin(statements: list[str]) -> None:
    import asyncpg

    dsn = PG_ADMIN_URL
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def database_url(db: str, smoke: bool, suffix: str = "") -> tuple[str, str]:
    name = DB_NAME + ("_smoke" if smoke else "") + suffix
    if db == "sqlite":
        path = WORK / f"{name}.db"
        return f"sqlite:///{path}", name
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}", name


def drop_database(db: str, smoke: bool, suffix: str = "") -> None:
    url, name = database_url(db, smoke, suffix)
    if db == "sqlite":
        for suffix in ("", "-wal", "-shm", ".write-lock"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    else:
        asyncio.run(_pg_admin([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]))


def write_lines(path: Path, lines: Any) -> Path:
    with path.open("w") as f:
        for line in lines:
            f.write(line + "\n")
    return path


def setup_provisor(db: str, sizes: Sizes, smoke: bool) -> Target:
    url, name = database_url(db, smoke)
    drop_database(db, smoke)
    if db == "postgresql":
        asyncio.run(_pg_admin([f"CREATE DATABASE {name}"]))
    data = WORK / db
    data.mkdir(parents=True, exist_ok=True)
    provisor_cli("migrate", "--database-url", url)
    token = provisor_cli(
        "token", "create", "--tenant", "bench", "--create-tenant", "--name", "bench", "--database-url", url
    )
    big_token = provisor_cli(
        "token", "create", "--tenant", "big", "--create-tenant", "--name", "bench", "--database-url", url
    )
    small, medium, large = sizes.groups
    plan = {
        "bench": TenantPlan(sizes.users, {"small": small, "medium": medium}),
        "big": TenantPlan(
            large + sizes.spare,
            {"large": large},
            shared_groups={"role_large": large, "role_small": sizes.role_small},
        ),
    }
    console.print(
        f"[bold]{db}[/]: seeding {sizes.users:,} + {large + sizes.spare:,} users, groups "
        f"{human(small)} / {human(medium)} / {human(large)} ..."
    )
    started = time.perf_counter()
    seeded: dict[str, TenantSeed] = asyncio.run(seed(url, plan, log=console.print))
    seed_seconds = time.perf_counter() - started
    main, big = seeded["bench"], seeded["big"]
    users_file = write_lines(data / "users.txt", (f"{i} {u}" for i, u in main.users))
    spare_small = write_lines(data / "spare.txt", (i for i, _ in main.users[main.spare_from :]))
    spare_large = write_lines(data / "spare_large.txt", (i for i, _ in big.users[big.spare_from :]))
    port = pick_port(PORTS[db])
    server = Server(
        f"provisor-{db}",
        [
            str(PROVISOR),
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            "--database-url",
            url,
            "--log-level",
            "warning",
        ],
        port,
        {},
        "/scim/v2",
        WORK / "logs" / f"provisor-{db}.log",
    )
    server.wait_ready("/healthz", 120, 2)
    groups = {"small": main.groups["small"], "medium": main.groups["medium"], "large": big.groups["large"]}
    groups |= {k: big.groups[k] for k in ("role_large", "role_small")}
    target = Target(
        db,
        server,
        token,
        big_token,
        users_file,
        spare_small,
        spare_large,
        groups,
        max(1, sizes.users // 100),
        seed_seconds,
        2,
    )
    target.admin = provisor_cli("token", "create", "--admin", "--name", "bench", "--database-url", url)
    target.url = url
    return target


def setup_peer(sizes: Sizes) -> Target:
    """scim2-server has no database: it is seeded in-process at start (bench/peer_app.py).

    Only the main tenant's data (users, small and medium groups) is seeded; the large group would
    need its 1M users in memory as pydantic models, so large-group scenarios are n/a for the peer."""
    from bench.seed import user_body, user_name

    data = WORK / "peer"
    data.mkdir(parents=True, exist_ok=True)
    small, medium, _ = sizes.groups
    ids_out = data / "ids.json"
    ids_out.unlink(missing_ok=True)
    spec = {
        "users": [user_body(user_name("bench", n), n) for n in range(sizes.users)],
        "groups": [{"displayName": "small", "members": small}, {"displayName": "medium", "members": medium}],
        "ids_out": str(ids_out),
    }
    (data / "seed.json").write_text(json.dumps(spec))
    token = "bench-peer-token"
    port = pick_port(PORTS["peer"])
    console.print(f"[bold]peer[/]: scim2-server, seeding {sizes.users:,} users in memory ...")
    started = time.perf_counter()
    server = Server(
        "peer",
        [
            str(PEER_VENV / "bin" / "python"),
            "-m",
            "uvicorn",
            "--app-dir",
            str(BENCH),
            "peer_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        port,
        {"BENCH_PEER_SEED": str(data / "seed.json"), "BENCH_PEER_TOKEN": token},
        "/v2",
        WORK / "logs" / "peer.log",
    )
    server.wait_ready("/v2/ServiceProviderConfig", 900, 1)
    seed_seconds = time.perf_counter() - started
    ids = json.loads(ids_out.read_text())
    users = ids["users"]
    spare_from = small + medium
    users_file = write_lines(data / "users.txt", (f"{i} {u}" for i, u in users))
    spare = write_lines(data / "spare.txt", (i for i, _ in users[spare_from:]))
    groups = {"small": ids["groups"]["small"], "medium": ids["groups"]["medium"]}
    return Target(
        "peer",
        server,
        token,
        token,
        users_file,
        spare,
        None,
        groups,
        max(1, sizes.users // 100),
        seed_seconds,
        1,
    )


# ---- scenarios -------------------------------------------------------------------------------------

_BENCHJSON = re.compile(r"^BENCHJSON (\{.*\})$", re.MULTILINE)


def run_wrk(target: Target, name: str, mode: str, conc: int, duration: int, run_id: int) -> Result:
    group_key = name.rsplit("_", 1)[-1] if mode.startswith("member") or mode == "group_get" else ""
    if group_key == "excl":
        group_key = "large"
    token, datafile, extra = target.token, target.users_file, ""
    if group_key:
        if group_key not in target.groups:
            return Result(name, target.name, True, "n/a (not seeded)")
        extra = target.groups[group_key]
        if group_key == "large":
            token = target.big_token
        if mode.startswith("member"):
            pool = target.spare_large if group_key == "large" else target.spare_small
            assert pool is not None  # a seeded group always has its pool of spare users
            datafile = pool
    if mode == "list":
        extra = str(target.list_pages)
    argv = [
        "wrk",
        "-t1",
        f"-c{conc}",
        f"-d{duration}s",
        "-T30s",
        "--latency",
        "-s",
        str(LUA),
        target.server.url,
        "--",
        mode,
        str(datafile),
        token,
        target.server.base_path,
        extra or "-",
        str(run_id),
    ]
    for pid in target.server.workers:
        reset_hwm(pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    rss = [v for v in (vm_hwm_mb(p) for p in target.server.workers) if v is not None]
    match = _BENCHJSON.search(done.stdout)
    if done.returncode != 0 or not match:
        return Result(name, target.name, False, f"wrk failed: {done.stderr.strip()[:200]}", conc, rss_mb=rss)
    stats = json.loads(match.group(1))
    errors = sum(v for k, v in stats.items() if k.startswith("err_"))
    seconds = stats["duration_us"] / 1e6
    result = Result(
        name,
        target.name,
        stats["requests"] > 0 and errors == 0,
        "ok" if stats["requests"] > 0 else "no request completed",
        conc,
        rps=stats["requests"] / seconds if seconds else None,
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        requests=stats["requests"],
        seconds=seconds,
        rss_mb=rss,
    )
    if errors:
        bad = {k: v for k, v in stats.items() if k.startswith("err_") and v}
        result.status = f"errors {bad} of {stats['requests']}"
        if stats.get("err_status"):
            result.note = probe_status(target, mode, token, extra, datafile)
    return result


def probe_status(target: Target, mode: str, token: str, extra: str, datafile: Path) -> str:
    """After non-2xx answers, replay one request of the kind to show what the server said."""
    first = datafile.read_text().split("\n", 1)[0].split()
    base = target.server.url + target.server.base_path
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if mode == "get":
            r = httpx.get(f"{base}/Users/{first[0]}", headers=headers)
        elif mode == "group_get":
            r = httpx.get(f"{base}/Groups/{extra}?excludedAttributes=members", headers=headers)
        else:
            return "see server log"
        return f"probe: {r.status_code} {r.text[:200]}"
    except httpx.HTTPError as exc:
        return f"probe failed: {exc}"


def run_flow(target: Target, name: str, kind: str, sizes: Sizes, run_id: int, conc: int) -> Result:
    base = target.server.url + target.server.base_path
    prefix = f"r{run_id}"
    for pid in target.server.workers:
        reset_hwm(pid)
    if kind == "sync":
        outcome = asyncio.run(
            drivers.initial_sync(base, target.token, sizes.sync_users, prefix, concurrency=conc)
        )
    elif kind == "bulk":
        outcome = asyncio.run(
            drivers.bulk_import(base, target.token, sizes.bulk_users, prefix, concurrency=conc)
        )
    else:
        if "large" not in target.groups:
            return Result(name, target.name, True, "n/a (not seeded)")
        outcome = asyncio.run(drivers.single_get(base, target.big_token, f"/Groups/{target.groups['large']}"))
    rss = [v for v in (vm_hwm_mb(p) for p in target.server.workers) if v is not None]
    if outcome.note.startswith("n/a"):
        return Result(name, target.name, True, outcome.note, conc, rss_mb=rss)
    status = "ok" if outcome.ok else f"failed: {outcome.note}"
    per_second = outcome.units / outcome.seconds if outcome.seconds and kind != "full_get" else None
    p50, p99 = outcome.percentile(50), outcome.percentile(99)
    return Result(
        name,
        target.name,
        outcome.ok,
        status,
        conc,
        rps=per_second,
        unit="users/s" if kind != "full_get" else "",
        requests=outcome.requests,
        seconds=outcome.seconds,
        p50_ms=p50 * 1000 if p50 is not None else None,
        p99_ms=p99 * 1000 if p99 is not None else None,
        rss_mb=rss,
        note=outcome.note if outcome.ok else "",
    )


APP_KINDS = ("roles", "snapshot")


def run_app_flow(target: Target, name: str, kind: str, mode: str, sizes: Sizes, run_id: int) -> Result:
    """The scenarios of bench/app_flows.py: Provisor's own admin API, so n/a for the peer."""
    if target.name == "peer":
        return Result(name, target.name, True, "n/a (Provisor's admin API)")
    root, tenant = target.server.url, "big"
    large, small = target.groups["role_large"], target.groups["role_small"]
    roles = {large: "bench-large", small: "bench-small"}
    for pid in target.server.workers:
        reset_hwm(pid)
    try:
        result = Result(name, target.name, True, "ok", 1)
        if kind == "snapshot":
            snap = app_flows.snapshot(root, target.admin, "bench")
            result.rps, result.unit, result.seconds = snap.rows / snap.seconds, "rows/s", snap.seconds
            result.requests = 1
            result.extra = {
                "seconds": round(snap.seconds, 2),
                "first byte ms": round(snap.first_byte * 1000, 1),
                "MB": round(snap.bytes / 1e6, 1),
                "users": snap.users,
                "groups": snap.groups,
                "memberships": snap.memberships,
                "rows/s": round(snap.rows / snap.seconds),
                "MB/s": round(snap.bytes / 1e6 / snap.seconds, 1),
            }
            result.note = (
                f"{snap.users:,} users + {snap.groups:,} groups ({snap.memberships:,} memberships), "
                f"{snap.bytes / 1e6:.1f} MB in {snap.seconds:.1f} s, "
                f"first byte {snap.first_byte * 1000:.0f} ms"
            )
            result.ok = snap.users >= sizes.users
        elif mode in ("map", "unmap"):
            if mode == "map":  # the small group's job is done in the map's own transaction
                app_flows.ensure_mapped(root, target.admin, target.url, tenant, small, roles[small])
            job = app_flows.map_job(
                root, target.admin, target.url, tenant, large, roles[large], add=mode == "map"
            )
            result.rps, result.unit, result.seconds = job.rate, "members/s", job.seconds
            result.requests = 0
            result.extra = {
                "members": job.members,
                "seconds": round(job.seconds, 1),
                "members/s": round(job.rate),
                "batches": job.batches,
                "events": job.events,
                "progress reads while running": sum(1 for _, p in job.progress if 0 < p < job.members),
            }
            result.note = job.note()
            # Progress must be readable mid-job; a tiny (smoke) job may finish between two reads.
            result.ok = job.batches >= app_flows.batches_expected(job.members) - 1 and (
                job.members <= 20 * app_flows.JOB_BATCH or result.extra["progress reads while running"] > 0
            )
        else:
            for group in (large, small):
                app_flows.ensure_mapped(root, target.admin, target.url, tenant, group, roles[group])
            sizes_of = {str(sizes.groups[2]): large, str(sizes.role_small): small}
            figures, idle = app_flows.member_adds(
                root,
                target.big_token,
                target.url,
                tenant,
                sizes_of,
                sizes.role_adds,
                f"r{run_id}{target.name[:2]}",
                target.name == "postgresql",
            )
            big, little = figures[str(sizes.groups[2])], figures[str(sizes.role_small)]
            adds = len(big.latencies_ms)
            result.p50_ms, result.p99_ms = big.percentile(50), big.percentile(99)
            result.requests, result.seconds = adds, sum(big.latencies_ms) / 1000
            result.rps, result.unit = adds / result.seconds, "adds/s"
            per_big, per_little = big.per_add(), little.per_add()
            result.extra = {
                f"group of {human(big.members)}: {k}": round(v, 2) for k, v in per_big.items()
            } | {f"group of {human(little.members)}: {k}": round(v, 2) for k, v in per_little.items()}
            for figures_of in (big, little):
                for p in (50, 99):
                    key = f"group of {human(figures_of.members)}: p{p} ms"
                    result.extra[key] = round(figures_of.percentile(p), 2)
            result.extra["p50 ratio large/small"] = round(big.percentile(50) / little.percentile(50), 2)
            if per_little.get("buffers"):
                ratio_of_buffers = per_big["buffers"] / per_little["buffers"]
                result.extra["buffers ratio large/small"] = round(ratio_of_buffers, 2)
            granted = (big.events.get("role_granted", 0), little.events.get("role_granted", 0))
            result.ok = granted == (adds, len(little.latencies_ms))
            counters = ""
            if idle is not None:
                result.extra |= {f"idle interval: {k}": v for k, v in idle.items()}
                counters = (
                    f"; per add (large vs small): {per_big['buffers']:.0f} vs {per_little['buffers']:.0f} "
                    "buffers, "
                    f"{per_big['tup_returned'] + per_big['tup_fetched']:.0f} vs "
                    f"{per_little['tup_returned'] + per_little['tup_fetched']:.0f} rows read, "
                    f"{per_big['tup_inserted']:.0f} vs {per_little['tup_inserted']:.0f} rows inserted"
                )
            result.note = (
                f"group of {human(little.members)}: p50 {little.percentile(50):.1f} / p99 "
                f"{little.percentile(99):.1f} ms (p50 ratio {result.extra['p50 ratio large/small']}); "
                f"role_granted per add {granted[0] / adds:.2f} vs {granted[1] / len(little.latencies_ms):.2f}"
                + counters
            )
            if not result.ok:
                result.status = f"role_granted events {granted} for {adds} adds each"
    except (app_flows.FlowError, httpx.HTTPError, KeyError) as exc:
        return Result(name, target.name, False, f"failed: {exc}"[:200], 1)
    result.rss_mb = [v for v in (vm_hwm_mb(p) for p in target.server.workers) if v is not None]
    return result


def run_scenario(
    target: Target, scenario: tuple[str, str, str, str, int], sizes: Sizes, run_id: int
) -> Result:
    name, _, kind, mode, conc = scenario
    started = time.perf_counter()
    load = os.getloadavg()[0]
    at = datetime.now(UTC).isoformat(timespec="seconds")
    cpu_before = cpu_seconds(target.server.workers)
    jiffies = cpu_jiffies()
    if kind == "wrk":
        result = run_wrk(target, name, mode, conc, sizes.duration, run_id)
    elif kind in APP_KINDS:
        result = run_app_flow(target, name, kind, mode, sizes, run_id)
    else:
        result = run_flow(target, name, kind, sizes, run_id, conc)
    result.load = round(load, 2)
    result.at = at
    result.steal = steal_since(jiffies)
    used = cpu_seconds(target.server.workers) - cpu_before
    drained = drain(target.server.workers)
    if drained > 2:
        result.note = (result.note + "; " if result.note else "") + f"server busy {drained:.0f}s after wrk"
    if kind == "bulk" and result.ok and result.rps:
        result.cpu_ms = round(1000 * used / sizes.bulk_users, 3)  # per user, not per request
    elif result.requests and kind != "full_get":
        result.cpu_ms = round(1000 * used / result.requests, 2)
    elif kind == "full_get" and result.status == "ok":
        result.cpu_ms = round(1000 * used, 1)
    if kind == "roles" and mode != "add" and result.ok and result.extra.get("members"):
        result.extra["server CPU ms per member"] = round(1000 * used / result.extra["members"], 3)
    style = "green" if result.ok else "red"
    console.print(
        f"  {target.name:10} {name:24} [{style}]{result.status}[/] "
        f"{fmt_rate(result)}  ({time.perf_counter() - started:.1f}s)"
    )
    return result


#: wrk modes whose requests do not depend on the ones before (random users, or new ones): they are
#: measured in two halves, in the order A B B A (`run_interleaved`).
SPLIT_MODES = frozenset({"get", "filter", "list", "group_get", "create", "patch", "put"})

#: Seconds of unmeasured load each target gets before its first half of a `SPLIT_MODES` scenario.
#: Between two turns a target sits idle for minutes (the other targets' scenarios, the other
#: database's seeding), and a host that reclaims page cache nobody touched lately (these machines
#: run DAMON's `pageout` on unmapped page cache idle for 60 s) then leaves SQLite reading its hot
#: B-tree pages from disk: after a drop of the page cache, SQLite's PATCH on the 1.12M-user file
#: ran 1,438 req/s in its first 10 s and 2,100-2,579 from the second on. PostgreSQL keeps those
#: pages in its own shared buffers. The figures are of the steady state, for every target alike;
#: docs/performance.md ("Method") gives the cold start's figures.
WARMUP_SECONDS = 3


def run_interleaved(targets: list[Target], sizes: Sizes, only: list[str] | None, run_id: int) -> list[Result]:
    """Each scenario on every target back to back, before the next scenario. The machine's speed
    drifts during a run (its ceiling moved from 36,549 to 27,826 req/s within one run, and from
    45,360 to 32,317 in another), so running all of one target's scenarios before the next
    target's made the ratios depend on when each target's turn came. The order alternates between
    scenarios, so no target is always last; and a scenario of `SPLIT_MODES` runs in two halves of
    the duration, in the order A B B A, so that a drift during the pair falls on both targets
    alike (`combined`), each target warmed up first (`WARMUP_SECONDS`)."""
    results: list[Result] = []
    selected = [s for s in SCENARIOS if (not only or s[0] in only)]
    for i, scenario in enumerate(selected):
        if scenario[2] == "full_get" and not sizes.full_group_read:
            continue
        order = targets if i % 2 == 0 else list(reversed(targets))
        if scenario[2] == "wrk" and scenario[3] in SPLIT_MODES and len(order) > 1:
            half = replace(sizes, duration=max(1, sizes.duration // 2))
            for t in order:
                warm_up(t, scenario, run_id + 4)
            first = {t.name: _run_one(t, scenario, half, run_id) for t in order}
            # A create's userNames are made of the run id: the second half's must differ.
            second = {t.name: _run_one(t, scenario, half, run_id + 2) for t in reversed(order)}
            results.extend(combined(first[t.name], second[t.name]) for t in order)
        else:
            results.extend(_run_one(t, scenario, sizes, run_id) for t in order)
    return results


def warm_up(target: Target, scenario: tuple[str, str, str, str, int], run_id: int) -> None:
    """`WARMUP_SECONDS` of the scenario's load, not measured; `run_id` differs from the measured
    runs' so that a create's userNames do not collide with theirs. A failure is printed and the
    run goes on, as for a measured run (`_run_one`)."""
    name, _, _, mode, conc = scenario
    try:
        result = run_wrk(target, name, mode, conc, WARMUP_SECONDS, run_id)
        drain(target.server.workers)
    except Exception as exc:
        console.print(f"[red]{target.name} {name} warm-up: {exc}[/]")
        return
    rate = f"{result.rps:,.0f} req/s" if result.rps else result.status
    console.print(f"  [dim]{target.name:10} {name:24} warm-up {WARMUP_SECONDS}s: {rate}[/]")


def _run_one(target: Target, scenario: tuple[str, str, str, str, int], sizes: Sizes, run_id: int) -> Result:
    try:
        return run_scenario(target, scenario, sizes, run_id)
    except Exception as exc:  # one scenario's failure must not end the run
        console.print(f"[red]{target.name} {scenario[0]}: {exc}[/]")
        return Result(scenario[0], target.name, False, f"failed: {exc}"[:120])


def combined(a: Result, b: Result) -> Result:
    """One result of a scenario's two halves: requests and seconds added up; p50 and CPU per
    request weighted by the halves' requests; p99 the higher of the two (wrk gives percentiles, not
    its histogram, and the higher never flatters)."""
    if not (a.ok and b.ok):
        return a if not a.ok else b
    requests, seconds = a.requests + b.requests, a.seconds + b.seconds

    def weighted(x: float | None, y: float | None) -> float | None:
        if x is None or y is None or not requests:
            return None
        return round((x * a.requests + y * b.requests) / requests, 3)

    steal = None
    if a.steal is not None and b.steal is not None and seconds:
        steal = round((a.steal * a.seconds + b.steal * b.seconds) / seconds, 1)
    return replace(
        a,
        rps=requests / seconds if seconds else None,
        p50_ms=weighted(a.p50_ms, b.p50_ms),
        p99_ms=max(v for v in (a.p99_ms, b.p99_ms) if v is not None) if (a.p99_ms or b.p99_ms) else None,
        requests=requests,
        seconds=seconds,
        rss_mb=[max(x, y) for x, y in zip(a.rss_mb, b.rss_mb, strict=False)] or a.rss_mb or b.rss_mb,
        note="; ".join(n for n in (a.note, b.note) if n),
        cpu_ms=weighted(a.cpu_ms, b.cpu_ms),
        steal=steal,
    )


def measure_ceiling(sizes: Sizes, machine: dict[str, Any]) -> None:
    """The bare-Starlette ceiling (bench/ceiling.py), measured before and after the scenarios, with
    the CPU time stolen meanwhile."""
    jiffies = cpu_jiffies()
    rps = ceiling.measure(pick_port(PORTS["ceiling"]), sizes.duration, ROOT)
    steal = steal_since(jiffies)
    machine.setdefault("ceiling_rps", []).append(rps)
    machine.setdefault("ceiling_steal", []).append(steal)
    stolen = "" if steal is None else f", {steal:.0f}% of the CPU time stolen"
    console.print(f"  machine ceiling (bare Starlette + uvicorn, 2 workers): {rps:,.0f} req/s{stolen}")


def speed(machine: dict[str, Any]) -> float:
    """This machine's speed relative to the targets' reference machine (1.0: the same)."""
    measured: list[float] = machine["ceiling_rps"]
    return sum(measured) / len(measured) / float(machine["reference_rps"])


def machine_line(machine: dict[str, Any]) -> str:
    ceilings = " and ".join(f"{v:,.0f}" for v in machine["ceiling_rps"])
    reference, factor = machine["reference_rps"], speed(machine)
    line = (
        f"Machine ceiling (bare Starlette + uvicorn, 2 workers, wrk 16 connections): {ceilings} req/s "
        f"before and after the scenarios; the targets' reference machine gives {reference:,.0f}, "
        f"so this one runs at {factor:.2f}x its speed. 'at ref.' = throughput / {factor:.2f}."
    )
    steal = machine.get("steal")
    if steal is not None:
        line += (
            f" The hypervisor gave {steal:.1f}% of this machine's CPU time to other guests during the run"
            " ('steal' column: during each scenario)."
        )
    extra = [cpu.line(machine.get("cpu") or {}), reclaim.line(machine.get("reclaim") or [])]
    return " ".join([line, *(part for part in extra if part)])


def at_reference(rps: float | None, unit: str, machine_speed: float) -> str:
    """Throughput scaled to the reference machine (assumes the work is CPU-bound, as it is here)."""
    return "" if rps is None or machine_speed <= 0 else f"{rps / machine_speed:,.0f} {unit}"


# ---- day one ---------------------------------------------------------------------------------------

#: Users the day-one scenario creates over HTTP before measuring (issue 21: 30,000).
DAYONE_USERS = {"full": 30_000, "smoke": 300}
#: The scenarios measured at once after the creates, and again after ANALYZE.
DAYONE_SCENARIOS = [s for s in SCENARIOS if s[0] in ("get_user", "filter_username", "patch_user")]


def ephemeral_port() -> int:
    """A port the kernel just found free, outside the fixed ones (`PORTS`) that a concurrent run
    prefers: Provisor's workers bind with SO_REUSEPORT, so two runs' servers on one port would
    share its connections silently (one answered the other's requests 401)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def provisor_server(db: str, url: str, port: int, log_name: str) -> Server:
    """`provisor serve --workers 2` on `port`, or on another free port if a concurrent run took it
    between the check and the bind."""
    for attempt in range(3):
        argv = [str(PROVISOR), "serve", "--workers", "2", "--port", str(port), "--database-url", url]
        server = Server(
            f"provisor-{db}",
            [*argv, "--log-level", "warning"],
            port,
            {},
            "/scim/v2",
            WORK / "logs" / f"{log_name}.log",
        )
        try:
            server.wait_ready("/healthz", 120, 2)
            return server
        except RuntimeError:
            server.stop()
            if attempt == 2 or "already in use" not in server.log.read_text():
                raise
            port = ephemeral_port()
    raise AssertionError("unreachable")


def run_dayone(db: str, sizes: Sizes, smoke: bool, run_id: int, keep: bool) -> dict[str, Any]:
    """Issue 21's day-one scenario on one database: an empty database, users created over HTTP at
    full speed (16 connections), then at once GET by id, `userName eq` and PATCH; then ANALYZE and
    the same three again. PostgreSQL's autovacuum may analyze meanwhile (a real deployment's first
    minutes): the statistics probes say whether it did, and so which figures depend on its timing."""
    users = DAYONE_USERS["smoke" if smoke else "full"]
    out: dict[str, Any] = {
        "database": db,
        "users": users,
        "dayone": [],
        "analyzed": [],
        "statistics_notes": [],
    }
    url, name = database_url(db, smoke, "_dayone")
    drop_database(db, smoke, "_dayone")
    if db == "postgresql":
        asyncio.run(_pg_admin([f"CREATE DATABASE {name}"]))
    data = WORK / f"{db}-dayone"
    data.mkdir(parents=True, exist_ok=True)
    provisor_cli("migrate", "--database-url", url)
    token = provisor_cli(
        "token", "create", "--tenant", "day1", "--create-tenant", "--name", "bench", "--database-url", url
    )
    server = provisor_server(db, url, ephemeral_port(), f"provisor-{db}-dayone")
    console.print(f"[bold]{db}[/]: day one, creating {users:,} users over HTTP (16 connections) ...")
    try:
        before = stats.state(url)
        cpu_before, load = cpu_seconds(server.workers), os.getloadavg()[0]
        jiffies = cpu_jiffies()
        outcome, made = asyncio.run(
            drivers.create_users(server.url + server.base_path, token, users, "day1", concurrency=16)
        )
        p50, p99 = outcome.percentile(50), outcome.percentile(99)
        create = Result(
            "dayone_create",
            db,
            outcome.ok,
            "ok" if outcome.ok else f"failed: {outcome.note}"[:200],
            16,
            rps=outcome.units / outcome.seconds if outcome.seconds else None,
            unit="users/s",
            p50_ms=None if p50 is None else p50 * 1000,
            p99_ms=None if p99 is None else p99 * 1000,
            requests=outcome.requests,
            seconds=outcome.seconds,
            load=round(load, 2),
            steal=steal_since(jiffies),
        )
        if outcome.requests:
            create.cpu_ms = round(1000 * (cpu_seconds(server.workers) - cpu_before) / outcome.requests, 2)
        out["create"] = asdict(create)
        console.print(f"  {db:10} {'day-one creates':24} {create.status} {fmt_rate(create)}")
        if not outcome.ok:
            out["error"] = create.status
            return out
        users_file = write_lines(data / "users.txt", (f"{i} {u}" for i, u in made))
        target = Target(db, server, token, token, users_file, users_file, None, {}, 1, 0.0, 2)
        created = stats.state(url)
        for scenario in DAYONE_SCENARIOS:
            out["dayone"].append(dayone_scenario(target, scenario, sizes, run_id, name))
        measured = stats.state(url)
        out["statistics"] = {"before": before, "created": created, "measured": measured}
        out["statistics_notes"] += [
            stats.describe(before, created, f"the {users:,} creates"),
            stats.describe(
                created, measured, "the day-one scenarios", [(r["at"], r["scenario"]) for r in out["dayone"]]
            ),
        ]
        # SQLite loads statistics when a connection opens, so the analyzed figures need a new server;
        # PostgreSQL gets the same restart, so that both sides of the ratio pay for it alike.
        server.stop()
        stats.analyze(url)
        server = provisor_server(db, url, ephemeral_port(), f"provisor-{db}-dayone-analyzed")
        target.server = server
        for scenario in DAYONE_SCENARIOS:
            out["analyzed"].append(dayone_scenario(target, scenario, sizes, run_id + 1, name))
        return out
    except Exception as exc:  # the day-one scenario's failure must not end the run
        console.print(f"[red]{db} day one: {exc}[/]")
        out["error"] = f"{exc}"[:200]
        return out
    finally:
        server.stop()
        if not keep:
            try:
                drop_database(db, smoke, "_dayone")
            except Exception as exc:
                console.print(f"[yellow]could not drop the {db} day-one database: {exc}[/]")


#: The tables the statistics keeper's first pass covers after seeding (storage/statistics.py
#: HOT_TABLES that the seed fills); `events` grows past its factor later, during the writes.
SEEDED_HOT_TABLES = ("resources", "attribute_index", "group_members")
#: The longest wait for that pass (the keeper looks every 10 s after writes, three times).
KEEPER_WAIT_SECONDS = 120.0


def await_keeper(target: Target) -> str:
    """Wait for the statistics keeper's first pass over the seeded tables, as a deployment that has
    run for a while has had it. The seed writes with COPY, behind the server's back, so the
    keeper starts looking at the server's first write; left to itself its ANALYZE of the
    million-row tables (seconds of both cores) fell inside whichever scenario came first and
    depressed it by up to 45% (docs/performance.md, "After the ninth round"). This runs no
    ANALYZE: it makes one write (a PATCH of a user's title, as `patch_user` does) and waits.
    Day one still measures a database the keeper has not caught up with."""
    first = target.users_file.read_text().split("\n", 1)[0].split()[0]
    headers = {"Authorization": f"Bearer {target.token}", "Content-Type": "application/scim+json"}
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "keeper"}],
    }
    began = time.monotonic()
    deadline = began + KEEPER_WAIT_SECONDS
    url = target.server.url + target.server.base_path
    while time.monotonic() < deadline:
        httpx.patch(f"{url}/Users/{first}", headers=headers, json=body, timeout=10)
        analyzed = stats.analyzed_tables(stats.state(target.url))
        if all(t in analyzed for t in SEEDED_HOT_TABLES):
            return f"the keeper's first pass ended {time.monotonic() - began:.0f} s after the first write"
        time.sleep(2.0)
    return f"the keeper had not analyzed {', '.join(SEEDED_HOT_TABLES)} after {KEEPER_WAIT_SECONDS:.0f} s"


def probe_statistics(db: str, smoke: bool) -> dict[str, Any]:
    """`stats.state` of a main bench database ({} when it cannot be read: the note says so)."""
    try:
        return stats.state(database_url(db, smoke)[0])
    except Exception as exc:
        console.print(f"[yellow]could not read the {db} statistics state: {exc}[/]")
        return {}


def backend_cpu(db: str, database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving `database` (SQLite works inside the
    workers, whose CPU `run_scenario` counts). A bad plan burns the database's CPU, not the workers'."""
    if db != "postgresql":
        return {}

    async def pids() -> list[int]:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database
            )
        finally:
            await conn.close()
        return [int(r["pid"]) for r in rows]

    return {pid: cpu_seconds([pid]) for pid in asyncio.run(pids())}


def dayone_scenario(
    target: Target, scenario: tuple[str, str, str, str, int], sizes: Sizes, run_id: int, database: str
) -> dict[str, Any]:
    """`run_scenario`, plus the CPU per request of workers and database backends together
    (`server_cpu_ms`): unlike throughput it hardly moves with the machine's load, and it shows a
    plan gone bad on PostgreSQL, whose CPU the workers' figure leaves out."""
    before = backend_cpu(target.name, database)
    workers = cpu_seconds(target.server.workers)
    result = run_scenario(target, scenario, sizes, run_id)
    used = cpu_seconds(target.server.workers) - workers
    after = backend_cpu(target.name, database)
    used += sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    out = asdict(result)
    out["server_cpu_ms"] = round(1000 * used / result.requests, 3) if result.requests else None
    return out


def dayone_failures(runs: list[dict[str, Any]]) -> list[str]:
    """What makes the run fail: a day-one scenario that did not run, or got a non-2xx answer.
    A ratio under the target is a MISS in the report, not a failure (as every other target)."""
    bad: list[str] = []
    for run in runs:
        db = run["database"]
        if run.get("error"):
            bad.append(f"{db} day one: {run['error']}")
            continue
        for phase in ("dayone", "analyzed"):
            got = {r["scenario"]: r for r in run[phase]}
            for scenario in DAYONE_SCENARIOS:
                r = got.get(scenario[0])
                if r is None or not r["ok"]:
                    bad.append(f"{db} day one ({phase}) {scenario[0]}: {r['status'] if r else 'did not run'}")
    return bad


def print_targets(report: dict[str, Any]) -> None:
    for section in target_sections(report):
        t = Table(title=section.title, show_lines=False)
        for i, header in enumerate(section.headers):
            t.add_column(header, justify="left" if i == 0 or header == "database" else "right")
        for row in section.rows:
            t.add_row(
                *[f"[green]{c}[/]" if c == "PASS" else f"[red]{c}[/]" if c == "MISS" else c for c in row]
            )
        console.print(t)
        for note in section.notes:
            console.print(f"  {note}")


# ---- report ----------------------------------------------------------------------------------------


def fmt_rate(r: Result) -> str:
    if r.rps is None:
        return f"{r.seconds:.2f} s" if r.seconds else ""
    text = f"{r.rps:,.0f} {r.unit}"
    if r.unit == "users/s":
        text += f" ({r.seconds:.1f} s)" if r.seconds >= 1 else f" ({r.seconds:.2f} s)"
    return text


def fmt_ms(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def ratio(results: list[Result], r: Result) -> str:
    if r.target == "peer" or r.rps is None:
        return ""
    peer = next((p for p in results if p.scenario == r.scenario and p.target == "peer"), None)
    if peer is None or not peer.ok or not peer.rps:
        return "n/a" if peer is not None else ""
    return f"{r.rps / peer.rps:.1f}x"


def table(results: list[Result], sizes: Sizes, title: str, machine_speed: float) -> Table:
    t = Table(title=title, show_lines=False)
    for col, justify in (
        ("scenario", "left"),
        ("database", "left"),
        ("conc", "right"),
        ("throughput", "right"),
        ("at ref.", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("CPU ms/req", "right"),
        ("peak RSS/worker MB", "right"),
        ("vs peer", "right"),
        ("load", "right"),
        ("steal %", "right"),
        ("status", "left"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    labels = {s[0]: label(s[1], sizes) for s in SCENARIOS}
    previous = None
    for r in results:
        shown = labels[r.scenario] if r.scenario != previous else ""
        previous = r.scenario
        rss = "/".join(f"{v:.0f}" for v in r.rss_mb)
        status = r.status if not r.note else f"{r.status}; {r.note}"
        t.add_row(
            shown,
            r.target if r.target != "peer" else "peer (1 worker)",
            str(r.concurrency or ""),
            fmt_rate(r),
            at_reference(r.rps, r.unit, machine_speed),
            fmt_ms(r.p50_ms),
            fmt_ms(r.p99_ms),
            "" if r.cpu_ms is None else f"{r.cpu_ms:.2f}",
            rss,
            ratio(results, r),
            f"{r.load:.1f}",
            "" if r.steal is None else f"{r.steal:.0f}",
            status,
        )
    return t


# ---- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small seeds, 2 s per scenario (CI)")
    parser.add_argument(
        "--only",
        choices=[*SCENARIO_NAMES, "dayone"],
        action="append",
        help="run this scenario (repeatable; dayone: the day-one one)",
    )
    parser.add_argument("--skip-dayone", action="store_true", help="skip the day-one scenario")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], help="only this database")
    parser.add_argument("--no-peer", action="store_true", help="skip the scim2-server comparison")
    parser.add_argument("--duration", type=int, help="seconds per wrk scenario")
    parser.add_argument("--keep", action="store_true", help="keep databases and servers' data afterwards")
    args = parser.parse_args(argv)

    sizes = SMOKE if args.smoke else FULL
    if args.duration:
        sizes = Sizes(**{**asdict(sizes), "duration": args.duration})
    mode = "smoke" if args.smoke else "full"
    dbs = [args.db] if args.db else ["sqlite", "postgresql"]
    run_id = int(time.time()) % 1_000_000
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dayone_only = args.only == ["dayone"]
    peer_ok = ensure_tools(need_peer=not args.no_peer and not dayone_only)

    run_jiffies = cpu_jiffies()
    machine: dict[str, Any] = {
        "reference_rps": ceiling.REFERENCE_RPS,
        "cpu": cpu.describe(),
        "reclaim": reclaim.pageout_schemes(),
    }
    measure_ceiling(sizes, machine)
    results: list[Result] = []
    setups: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    order = [] if dayone_only else [*dbs, *(["peer"] if peer_ok else [])]
    targets: list[Target] = []
    # Day one first, on its own empty databases, before the main targets' servers hold memory.
    dayone_runs = (
        []
        if args.skip_dayone or (args.only and "dayone" not in args.only)
        else [run_dayone(db, sizes, args.smoke, run_id, args.keep) for db in dbs]
    )
    statistics: dict[str, dict[str, Any]] = {}
    try:
        for name in order:
            try:
                target = setup_peer(sizes) if name == "peer" else setup_provisor(name, sizes, args.smoke)
            except Exception as exc:  # a target that cannot start fails its scenarios, not the whole run
                console.print(f"[red]{name}: {exc}[/]")
                failures.append(f"{name}: {exc}")
                if name != "peer":
                    results.extend(
                        Result(s, name, False, f"target failed: {exc}"[:120])
                        for s in SCENARIO_NAMES
                        if not args.only or s in args.only
                    )
                continue
            targets.append(target)
            setups[name] = {"seed_seconds": round(target.seed_seconds, 1), "workers": target.workers}
            keeper = await_keeper(target) if name == "postgresql" else None
            if keeper is not None:
                console.print(f"  {name}: {keeper}")
            if name != "peer":
                statistics[name] = {"after_seed": probe_statistics(name, args.smoke), "keeper": keeper}
        results.extend(run_interleaved(targets, sizes, args.only, run_id))
    finally:
        for name in statistics:
            statistics[name]["end"] = probe_statistics(name, args.smoke)
        for target in targets:
            target.server.stop()
        for name in dbs:
            if not args.keep:
                try:
                    drop_database(name, args.smoke)
                except Exception as exc:
                    console.print(f"[yellow]could not drop the {name} bench database: {exc}[/]")

    measure_ceiling(sizes, machine)
    machine["speed"] = speed(machine)
    machine["steal"] = steal_since(run_jiffies)
    order_index = {n: i for i, n in enumerate(SCENARIO_NAMES)}
    target_index = {"sqlite": 0, "postgresql": 1, "peer": 2}
    results.sort(key=lambda r: (order_index[r.scenario], target_index[r.target]))
    elapsed = time.perf_counter() - started
    title = (
        f"Provisor bench ({mode}, {os.cpu_count()} cores, Provisor 2 workers, "
        f"wrk {sizes.duration}s per scenario (single-resource ones in halves, A B B A, after a"
        f" {WARMUP_SECONDS}s warm-up), total {elapsed:.0f}s)"
    )
    if results:
        console.print(table(results, sizes, title, machine["speed"]))
    console.print(machine_line(machine))

    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {
        "mode": mode,
        "finished": stamp,
        "seconds": round(elapsed, 1),
        "cpus": os.cpu_count(),
        "sizes": asdict(sizes),
        "targets": setups,
        "machine": machine,
        "failures": failures,
        "scenarios": {s[0]: label(s[1], sizes) for s in SCENARIOS},
        "results": [asdict(r) for r in results],
        "dayone": dayone_runs,
        "statistics": statistics,
        "statistics_notes": [
            stats.describe(
                s["after_seed"],
                s["end"],
                f"{db}, the scenarios above (no ANALYZE after seeding)",
                [(r.at, r.scenario) for r in results if r.target == db and r.at],
            )
            for db, s in statistics.items()
        ],
    }
    print_targets(report)
    out = RESULTS / f"{stamp}-{mode}.json"
    out.write_text(json.dumps(report, indent=2))
    shutil.copyfile(out, RESULTS / f"latest-{mode}.json")
    console.print(f"results written to {out.relative_to(ROOT)}")

    bad = [r for r in results if r.target != "peer" and not r.ok]
    expected = {(s, d) for s in SCENARIO_NAMES for d in dbs if not args.only or s in args.only}
    if not sizes.full_group_read:
        expected = {e for e in expected if e[0] != "group_get_large_full"}
    missing = expected - {(r.scenario, r.target) for r in results}
    dayone_bad = dayone_failures(dayone_runs)
    if bad or missing or dayone_bad:
        for line in dayone_bad:
            console.print(f"[red]FAILED {line}[/]")
        for r in bad:
            console.print(f"[red]FAILED {r.target} {r.scenario}: {r.status} {r.note}[/]")
        for s, d in sorted(missing):
            console.print(f"[red]MISSING {d} {s}[/]")
        return 1
    peer_bad = [r for r in results if r.target == "peer" and not r.ok]
    for r in peer_bad:
        console.print(f"[yellow]peer {r.scenario}: {r.status}[/] (not counted: the peer is only a reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
