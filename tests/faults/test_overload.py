"""200 concurrent connections against `provisor serve --workers 2` (issue 23 §5), both databases.

GETs by id from 16 connections, then from 200, each a closed loop that honours `Retry-After` as
Okta and Entra ID do (tests/faults/load.py). Promised (docs/operations.md, "Overload"): every
answer is 200 or a 503 with `Retry-After` (or a 429); the p99 at 200 connections, over all answers
and over the 2xx alone, is at most 4x the 16-connection p99; the server keeps serving (2xx/s at 200
connections at least half of those at 16); worker memory stays under `RSS_BOUND_MIB`; refusals are
counted in `/metrics` and never logged as tracebacks.

Without admission control (http/admission.py) this fails: with every request admitted, latency
grows with the connections (p99 10-70x on SQLite, 4-14x on PostgreSQL, measured). The machine is
shared, so the pair of runs is repeated up to `ROUNDS` times and the promise must hold in one whole
round (both ratios, in the same round, measured seconds apart). Six rounds, not three: on a host at
a third of the reference's speed, with `make test`'s other worker busy beside it, three rounds in
a row gave 6.2, 7.3 and 4.4 on SQLite, and the same test alone 2.3-4.7; without admission control
every round is far above 4x, so the extra rounds cannot hide that.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.faults.load import Answers, drive, percentile
from tests.live.server import LiveServer, live_server
from tests.scim_client import mint_token

WORKERS = 2
USERS = 200
LOW, HIGH = 16, 200
SECONDS = 3.0
ROUNDS = 6
RATIO = 4.0
#: Each worker's resident memory at its peak (VmHWM), MiB; docs/operations.md gives the measured
#: 86-95 MiB. A queue that grew with the connections, or a leak per refusal, would cross it.
RSS_BOUND_MIB = 160
ALLOWED = frozenset({200, 429, 503})


def _workers(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out.extend(int(c) for c in (task / "children").read_text().split())
    return [p for p in out if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def _seed(server: LiveServer) -> list[str]:
    with httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as client:
        ids = []
        for n in range(USERS):
            body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"load{n}"}
            answer = client.post("/Users", json=body)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
    return [f"/scim/v2/Users/{rid}" for rid in ids]


def _summary(answers: Answers) -> dict[str, Any]:
    every, ok = answers.everything(), answers.of(200)
    return {
        "p50_ms": round(percentile(every, 0.5) * 1000, 1),
        "p99_ms": round(percentile(every, 0.99) * 1000, 1),
        "p99_2xx_ms": round(percentile(ok, 0.99) * 1000, 1),
        "ok_per_s": round(answers.rate(200)),
        "statuses": {s: answers.count(s) for s in sorted(answers.latencies)},
    }


def _describe(r: dict[str, Any]) -> str:
    low, high = r["low"], r["high"]
    return (
        f"16 conns: p50 {low['p50_ms']} p99 {low['p99_ms']} ms {low['ok_per_s']} 2xx/s {low['statuses']}; "
        f"200 conns: p50 {high['p50_ms']} p99 {high['p99_ms']} (2xx {high['p99_2xx_ms']}) ms "
        f"{high['ok_per_s']} 2xx/s {high['statuses']}; ratios {r['ratio_all']:.1f}/{r['ratio_2xx']:.1f}, "
        f"kept serving {r['kept_serving']:.2f}, peak RSS {r['peak_rss_mib']} MiB"
    )


def _check_answers(answers: Answers) -> None:
    assert set(answers.latencies) <= ALLOWED, _summary(answers)
    assert answers.missing_retry_after == 0, "a 503 without Retry-After"
    assert answers.dropped == 0, "the server dropped connections"
    assert answers.count(200) > 0


def _shed_counted(server: LiveServer, admin: str) -> float:
    url = server.base_url.replace("/scim/v2", "/metrics")
    text = httpx.get(url, headers={"Authorization": f"Bearer {admin}"}, timeout=10).text
    for line in text.splitlines():
        if line.startswith("provisor_http_shed_requests_total "):
            return float(line.split()[1])
    return 0.0


def test_200_connections_keep_p99_within_4x_of_16(database_url: str, tenant_id: str) -> None:
    admin = mint_token(database_url, None, kind="admin", name="overload-metrics")
    with live_server(database_url, tenant_id, workers=WORKERS) as server:
        paths = _seed(server)
        port = int(server.base_url.rsplit(":", 1)[1].split("/", 1)[0])
        workers = _workers(server.process.pid)
        assert len(workers) == WORKERS
        rounds: list[dict[str, Any]] = []
        refused = 0
        began = time.monotonic()
        for _ in range(ROUNDS):
            low = drive("127.0.0.1", port, paths, server.token, connections=LOW, seconds=SECONDS)
            high = drive("127.0.0.1", port, paths, server.token, connections=HIGH, seconds=SECONDS)
            for answers in (low, high):
                _check_answers(answers)
            refused += low.count(503) + high.count(503)
            base = percentile(low.everything(), 0.99)
            rounds.append(
                {
                    "low": _summary(low),
                    "high": _summary(high),
                    "ratio_all": percentile(high.everything(), 0.99) / base,
                    "ratio_2xx": percentile(high.of(200), 0.99) / base,
                    "kept_serving": high.rate(200) / low.rate(200),
                    "peak_rss_mib": [round(_peak_rss_mib(pid)) for pid in workers],
                }
            )
            last = rounds[-1]
            if last["ratio_all"] <= RATIO and last["ratio_2xx"] <= RATIO and last["kept_serving"] >= 0.5:
                break
        for r in rounds:
            print(_describe(r))  # the figures, with `pytest -s`
        for peak in rounds[-1]["peak_rss_mib"]:  # VmHWM: the peak since the worker started
            assert peak <= RSS_BOUND_MIB, "\n".join(_describe(r) for r in rounds)
        held = [
            r
            for r in rounds
            if r["ratio_all"] <= RATIO and r["ratio_2xx"] <= RATIO and r["kept_serving"] >= 0.5
        ]
        assert held, "\n".join(_describe(r) for r in rounds)
        deadline = time.monotonic() + 5  # workers hand their counts to the shared metrics every second
        while _shed_counted(server, admin) < refused and time.monotonic() < deadline:
            time.sleep(0.25)
        assert _shed_counted(server, admin) >= refused
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    if refused:
        assert "overloaded:" in log  # one summary line per 10 s, not one per refusal
        elapsed = time.monotonic() - began
        assert log.count("overloaded:") <= WORKERS * (elapsed / 10 + 1)
