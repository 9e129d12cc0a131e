"""`/metrics` (http/metrics.py, telemetry/metrics.py) against a real `provisor serve --workers 2`:
one scrape covers every worker, routes are templates (never ids), the endpoint needs an admin token
on the main port, and `PROVISOR_METRICS_ADDRESS` moves it to a separate listener or turns it off."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from provisor.storage import webhooks as webhook_store
from provisor.storage.transactions import write_transaction
from tests.live.server import LiveServer, free_port, live_server
from tests.scim_client import mint_token, run_db

REQUESTS = 40


def samples(text: str, family: str) -> dict[str, float]:
    """`{labels: value}` of one family's samples in a Prometheus text exposition."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(family)}(\{{.*\}})? (\S+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def admin_headers(database_url: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(database_url, None, kind='admin')}"}


def scrape(server: LiveServer, headers: dict[str, str]) -> str:
    response = httpx.get(server.base_url.replace("/scim/v2", "/metrics"), headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def settled(get: Callable[[], str], family: str, labels: str, expected: float) -> str:
    """The first scrape whose sample has reached `expected`: each worker hands its counts over
    once a second (telemetry/metrics.py `RequestMetrics`)."""
    deadline = time.monotonic() + 5
    while True:
        text = get()
        if samples(text, family).get(labels) == expected or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def worker_files(server: LiveServer) -> set[str]:
    """The pids whose metric files are in the server's metrics directory (read from a worker's
    environment: `serve` sets the variable after it started)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        found = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
        if found:
            return {p.stem.rsplit("_", 1)[1] for p in Path(found[0].decode()).glob("counter_*.db")}
    raise AssertionError("no worker has PROMETHEUS_MULTIPROC_DIR")


@pytest.fixture
def server(fresh_database_url: str, tenant_id: str) -> Iterator[LiveServer]:
    """On a database of its own: the outbox gauges are global, and other tests' webhooks lag."""
    with live_server(fresh_database_url, tenant_id, workers=2) as live:
        yield live


def test_one_scrape_covers_both_workers_with_route_templates(
    server: LiveServer, fresh_database_url: str
) -> None:
    created = httpx.post(f"{server.base_url}/Users", headers=server.headers, json={"userName": "m1"})
    assert created.status_code == 201
    user_id = created.json()["id"]
    for _ in range(REQUESTS):  # a new connection each time, so the kernel spreads them over both workers
        headers = {**server.headers, "Connection": "close"}
        assert httpx.get(f"{server.base_url}/Users/{user_id}", headers=headers).status_code == 200
    missing = f"/Users/{uuid.uuid4()}"
    assert httpx.get(server.base_url + missing, headers=server.headers).status_code == 404
    assert httpx.get(f"{server.base_url}/Nothing/{user_id}", headers=server.headers).status_code == 404
    assert len(worker_files(server)) == 2  # both workers served requests
    headers = admin_headers(fresh_database_url)
    by_id = '{method="GET",route="/scim/v2/Users/{id}",status="200"}'
    settled(lambda: scrape(server, headers), "provisor_http_requests_total", by_id, REQUESTS)
    # The two 404s came last, to either worker, which may not have handed them over yet.
    for last in (
        '{method="GET",route="/scim/v2/Users/{id}",status="404"}',
        '{method="GET",route="{unmatched}",status="404"}',
    ):
        settled(lambda: scrape(server, headers), "provisor_http_requests_total", last, 1)
    for _ in range(6):  # each scrape is answered by either worker, and each reports both
        text = scrape(server, headers)
        requests = samples(text, "provisor_http_requests_total")
        assert requests[by_id] == REQUESTS
        assert requests['{method="GET",route="/scim/v2/Users/{id}",status="404"}'] == 1
        assert requests['{method="POST",route="/scim/v2/Users",status="201"}'] == 1
        assert requests['{method="GET",route="{unmatched}",status="404"}'] == 1
        count = samples(text, "provisor_http_request_duration_seconds_count")
        assert count['{method="GET",route="/scim/v2/Users/{id}"}'] == REQUESTS + 1  # and the 404
        assert user_id not in text and missing not in text  # no raw ids in any label
        assert all(line.startswith(("# ", "provisor_")) for line in text.splitlines() if line)
    assert "provisor_db_statement_duration_seconds_bucket" in text
    assert samples(text, "provisor_outbox_lag_events") == {"": 0.0}  # no webhooks
    # Every SCIM request above looked its token up (the scrapes' admin tokens count too); the
    # workers hand these counts over with their request counts.
    looked_up = sum(
        samples(text, f"provisor_token_cache_{kind}_total").get("", 0.0) for kind in ("hits", "misses")
    )
    assert looked_up >= REQUESTS + 3


def test_metrics_need_an_admin_token_on_the_main_port(server: LiveServer, fresh_database_url: str) -> None:
    url = server.base_url.replace("/scim/v2", "/metrics")
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert httpx.get(url, headers=server.headers).status_code == 401  # a SCIM token is not enough
    assert httpx.get(url, headers=admin_headers(fresh_database_url)).status_code == 200


def test_separate_address_without_auth_and_none_on_main_port(database_url: str, tenant_id: str) -> None:
    port = free_port()
    env = {"PROVISOR_METRICS_ADDRESS": f"127.0.0.1:{port}"}
    with live_server(database_url, tenant_id, workers=2, env=env) as live:
        for _ in range(4):
            headers = {**live.headers, "Connection": "close"}
            assert httpx.get(f"{live.base_url}/Users", headers=headers).status_code == 200
        main = live.base_url.replace("/scim/v2", "/metrics")
        assert httpx.get(main, headers=admin_headers(database_url)).status_code == 404

        def get() -> str:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert response.status_code == 200
            return response.text

        users = '{method="GET",route="/scim/v2/Users",status="200"}'
        settled(get, "provisor_http_requests_total", users, 4)
        for _ in range(4):
            assert samples(get(), "provisor_http_requests_total")[users] == 4
        assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404


def test_metrics_off(database_url: str, tenant_id: str) -> None:
    with live_server(database_url, tenant_id, env={"PROVISOR_METRICS_ADDRESS": "off"}) as live:
        main = live.base_url.replace("/scim/v2", "/metrics")
        assert httpx.get(main, headers=admin_headers(database_url)).status_code == 404


def test_outbox_lag_and_dead_letters(fresh_database_url: str, tenant_id: str) -> None:
    """In-process, with delivery off: the lag counts the events the webhook has not had, and a
    delivery that gave up is a dead letter (a database of its own: webhooks are global)."""
    url = fresh_database_url
    token = mint_token(url, tenant_id)
    headers = {"Authorization": f"Bearer {token}"}

    async def add_hook(engine: Any) -> str:
        async with write_transaction(engine) as conn:
            hook = await webhook_store.add_webhook(conn, url="http://127.0.0.1:9/hook", secret="")
        return hook.id

    async def fan_out_and_kill_first(engine: Any) -> None:
        async with write_transaction(engine) as conn:
            await webhook_store.fan_out(conn, hook_id, gap_grace=0)
            first = min(seq for seq in (await webhook_store.delivery_states(conn, hook_id)))
            await webhook_store.mark_failed(conn, hook_id, first, error="HTTP 500", retry_in=None)

    with TestClient(create_app(Settings(database_url=url, webhooks_enabled=False))) as client:
        admin = admin_headers(url)
        text = client.get("/metrics", headers=admin).text
        assert samples(text, "provisor_outbox_lag_events") == {"": 0.0}
        hook_id = run_db(url, add_hook)
        for name in ("lag1", "lag2", "lag3"):
            assert client.post("/scim/v2/Users", headers=headers, json={"userName": name}).status_code == 201
        text = client.get("/metrics", headers=admin).text
        assert samples(text, "provisor_outbox_lag_events") == {"": 3.0}
        assert samples(text, "provisor_webhook_dead_letters") == {"": 0.0}
        run_db(url, fan_out_and_kill_first)
        text = client.get("/metrics", headers=admin).text
        # The dead delivery is no longer lag (it is a dead letter); the two pending ones still are.
        assert samples(text, "provisor_outbox_lag_events") == {"": 2.0}
        assert samples(text, "provisor_webhook_dead_letters") == {"": 1.0}


def test_dashboard_and_alerts_use_only_exposed_families() -> None:
    """Every `provisor_*` name in the Grafana dashboard and the alerting rules is one that a scrape
    exposes (a renamed metric would otherwise leave a silent panel or an alert that never fires)."""
    import json

    import yaml

    from provisor.telemetry.metrics import exposition, outbox_families

    text = exposition(outbox_families(0, None, 0)).decode()
    exposed = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    docs = Path(__file__).parents[2] / "docs"
    dashboard = json.loads((docs / "grafana" / "provisor.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((docs / "prometheus" / "alerts.yml").read_text())
    exprs += [str(r["expr"]) for g in rules["groups"] for r in g["rules"]]
    used = {name for expr in exprs for name in re.findall(r"provisor_[a-z_]+", expr)}
    assert used
    for name in used:
        family = re.sub(r"_(bucket|count|sum)$", "", name)
        assert family in exposed or family.removesuffix("_total") in exposed, name


def test_serve_refuses_a_bad_or_taken_metrics_address(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    provisor = str(Path(sys.executable).with_name("provisor"))
    url = f"sqlite:///{tmp_path / 'm.db'}"

    def serve(address: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PROVISOR_METRICS_ADDRESS": address}
        command = [provisor, "serve", "--port", str(free_port()), "--database-url", url]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    bad = serve("bogus")
    assert bad.returncode == 2 and "PROVISOR_METRICS_ADDRESS: must be main, off or HOST:PORT" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = serve(f"127.0.0.1:{port}")
    assert busy.returncode == 1 and f"cannot listen for metrics on 127.0.0.1:{port}" in busy.stderr
    assert "Traceback" not in busy.stderr + bad.stderr
