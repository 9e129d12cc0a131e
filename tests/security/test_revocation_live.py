"""A deleted tenant's tokens, a revoked token and a token rotated with no overlap are refused by
every worker the moment the CLI (another process) or the console (one of the workers) returns,
every time (storage/auth_cache.py `auth_write`: on PostgreSQL it waits for every worker's cache,
on SQLite it rewrites the signal file every worker reads before answering from its cache).

Against a real `provisor serve --workers 2`: each round warms both workers' caches with the token
(several requests, spread over the workers by the kernel), changes it, and then requires 401 from
the very next requests, without any wait in between.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from click.testing import CliRunner

from provisor.cli import main
from tests.console.conftest import csrf_of
from tests.live.server import live_server
from tests.scim_client import mint_token

ROUNDS = 50
#: For the slower changes (a rotation's CLI run, a console session's pages).
FEWER_ROUNDS = 15
WARM_REQUESTS = 6
CHECK_REQUESTS = 4


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def _mint(database_url: str, tenant: str) -> tuple[str, str]:
    """(token id, secret) of a new token for `tenant`, through the CLI."""
    result = cli("token", "create", "--tenant", tenant, "--database-url", database_url)
    token_id = result.stderr.split("token ", 1)[1].split()[0]  # "created scim token ID (...)"
    return token_id, result.stdout.strip().splitlines()[-1]


def _statuses(client: httpx.Client, base: str, secret: str, count: int) -> list[int]:
    # A fresh connection per request, so that the kernel can hand each to either worker.
    headers = {"Authorization": f"Bearer {secret}", "Connection": "close"}
    return [client.get(f"{base}/Users", headers=headers).status_code for _ in range(count)]


def test_deleted_tenant_tokens_stop_at_once(database_url: str, tenant_id: str) -> None:
    with live_server(database_url, tenant_id, workers=2) as server, httpx.Client(timeout=10) as client:
        for round_ in range(ROUNDS):
            tenant = f"gone-{uuid.uuid4().hex[:8]}"
            cli("tenant", "create", tenant, "--database-url", database_url)
            _, secret = _mint(database_url, tenant)
            assert _statuses(client, server.base_url, secret, WARM_REQUESTS) == [200] * WARM_REQUESTS
            cli("tenant", "delete", tenant, "--force", "--database-url", database_url)
            statuses = _statuses(client, server.base_url, secret, CHECK_REQUESTS)
            assert statuses == [401] * CHECK_REQUESTS, f"round {round_}: {statuses}"


def test_revoked_token_stops_at_once(database_url: str, tenant_id: str) -> None:
    with live_server(database_url, tenant_id, workers=2) as server, httpx.Client(timeout=10) as client:
        for round_ in range(ROUNDS):
            token_id, secret = _mint(database_url, tenant_id)
            assert _statuses(client, server.base_url, secret, WARM_REQUESTS) == [200] * WARM_REQUESTS
            cli("token", "revoke", token_id, "--database-url", database_url)
            statuses = _statuses(client, server.base_url, secret, CHECK_REQUESTS)
            assert statuses == [401] * CHECK_REQUESTS, f"round {round_}: {statuses}"


def test_token_rotated_with_no_overlap_stops_at_once(database_url: str, tenant_id: str) -> None:
    with live_server(database_url, tenant_id, workers=2) as server, httpx.Client(timeout=10) as client:
        for round_ in range(FEWER_ROUNDS):
            token_id, secret = _mint(database_url, tenant_id)
            assert _statuses(client, server.base_url, secret, WARM_REQUESTS) == [200] * WARM_REQUESTS
            cli("token", "rotate", token_id, "--overlap", "0s", "--database-url", database_url)
            statuses = _statuses(client, server.base_url, secret, CHECK_REQUESTS)
            assert statuses == [401] * CHECK_REQUESTS, f"round {round_}: {statuses}"


def test_token_revoked_in_the_console_stops_at_once_in_every_worker(
    database_url: str, tenant_id: str
) -> None:
    with live_server(database_url, tenant_id, workers=2) as server, httpx.Client(timeout=10) as client:
        root = server.base_url.removesuffix("/scim/v2")
        admin = mint_token(database_url, None, kind="admin")
        with httpx.Client(base_url=root, follow_redirects=False, timeout=10) as console:
            assert console.post("/console/login", data={"token": admin}).status_code == 303
            for round_ in range(FEWER_ROUNDS):
                token_id, secret = _mint(database_url, tenant_id)
                assert _statuses(client, server.base_url, secret, WARM_REQUESTS) == [200] * WARM_REQUESTS
                csrf = csrf_of(console.get("/console/tokens").text)
                revoked = console.post(f"/console/tokens/{token_id}/revoke", data={"csrf": csrf})
                assert revoked.status_code == 200 and f"Revoked token {token_id}" in revoked.text, (
                    revoked.text
                )
                statuses = _statuses(client, server.base_url, secret, CHECK_REQUESTS)
                assert statuses == [401] * CHECK_REQUESTS, f"round {round_}: {statuses}"
