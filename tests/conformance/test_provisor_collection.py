"""Provisor's own Postman collection (docs/postman/provisor.postman_collection.json), run with newman against
a real `provisor serve` on SQLite and PostgreSQL: every request's `pm.test`s must pass, twice in a row on the
same tenant (the collection picks a per-run suffix, so it can be re-run against a live deployment).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conformance.newman import run_collection
from tests.conformance.suites import REPO_ROOT, database_kind, record_counts
from tests.live.server import live_server

COLLECTION = REPO_ROOT / "docs" / "postman" / "provisor.postman_collection.json"


def test_every_request_has_assertions() -> None:
    collection = json.loads(COLLECTION.read_text())
    requests = [item for folder in collection["item"] for item in folder["item"]]
    assert len(requests) >= 35
    for request in requests:
        tests = [e for e in request.get("event", []) if e["listen"] == "test"]
        assert tests and any("pm.test(" in line for line in tests[0]["script"]["exec"]), request["name"]


def test_provisor_collection(database_url: str, tenant_id: str, tmp_path: Path, record_property: Any) -> None:
    collection = json.loads(COLLECTION.read_text())
    with live_server(database_url, tenant_id) as server:
        env = {"baseUrl": server.base_url, "token": server.token}
        first = run_collection(collection, env, tmp_path / "first", "provisor")
        second = run_collection(collection, env, tmp_path / "second", "provisor (re-run)")
    record_counts(
        record_property,
        "provisor collection (newman)",
        database_kind(database_url),
        first.passed,
        first.total,
    )
    print(first.summary())
    requests = sum(len(folder["item"]) for folder in collection["item"])
    for run in (first, second):
        assert len(run.exchanges) == requests, run.format(only_failures=False)
        assert run.total >= 100, run.format(only_failures=False)
        assert not run.failed_tests and not run.request_errors and not run.failures, run.format()
