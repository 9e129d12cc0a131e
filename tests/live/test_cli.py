"""The `provisor` command line, run as a real process against both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.live.server import free_port, wait_ready

PROVISOR = str(Path(sys.executable).with_name("provisor"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROVISOR, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_migrate_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        result = run("migrate", "--database-url", database_url)
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout


def test_token_create_list_revoke(database_url: str, tenant_id: str) -> None:
    created = run(
        "token",
        "create",
        "--tenant",
        tenant_id,
        "--create-tenant",
        "--name",
        "cli-test",
        "--database-url",
        database_url,
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("prv_") and len(secret) > 40
    listed = run("token", "list", "--database-url", database_url)
    assert secret not in listed.stdout and secret[4:20] not in listed.stdout
    line = next(row for row in listed.stdout.splitlines() if "cli-test" in row and tenant_id in row)
    token_id = line.split()[0]

    port = free_port()
    server = subprocess.Popen(
        [PROVISOR, "serve", "--port", str(port), "--database-url", database_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server)
        headers = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{base}/scim/v2/Users", headers=headers).status_code == 200
        revoked = run("token", "revoke", token_id, "--database-url", database_url)
        assert revoked.returncode == 0, revoked.stderr
        denied = httpx.get(f"{base}/scim/v2/Users", headers=headers)  # no restart needed
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer")
        assert run("token", "revoke", token_id, "--database-url", database_url).returncode != 0
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_static_token_from_environment(database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "PROVISOR_TOKEN": "static-secret-for-tests", "PROVISOR_DATABASE_URL": database_url}
    server = subprocess.Popen(
        [PROVISOR, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server)
        ok = httpx.get(
            f"{base}/scim/v2/ServiceProviderConfig",
            headers={"Authorization": "Bearer static-secret-for-tests"},
        )
        assert ok.status_code == 200
        bad = httpx.get(
            f"{base}/scim/v2/ServiceProviderConfig", headers={"Authorization": "Bearer static-secret"}
        )
        assert bad.status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)
