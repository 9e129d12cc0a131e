"""`make serve` run twice: the second run, its port taken, stops at once with a one-line fix and mints
nothing; a later run replaces the earlier token instead of adding one more that never expires."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.live.make_serve import REPO, make_serve, make_serve_command, make_serve_env
from tests.live.server import free_port


def make_serve_tokens(database_url: str) -> dict[str, str]:
    """id -> state of the default tenant's tokens named "make serve", as `provisor token list` shows them."""
    provisor = Path(sys.executable).with_name("provisor")
    listed = subprocess.run(
        [str(provisor), "token", "list", "--database-url", database_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    tokens = {}
    for line in listed.splitlines():
        columns = re.split(r"\s{2,}", line.strip())
        if columns[1:4] == ["scim", "default", "make serve"]:
            tokens[columns[0]] = columns[-1]
    return tokens


def users_status(base_url: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{base_url}/Users", headers=headers, timeout=10).status_code


def test_make_serve_twice(fresh_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    with make_serve(fresh_database_url, port, tmp_path / "first.log") as first:
        assert users_status(first.base_url, first.token) == 200
        before = make_serve_tokens(fresh_database_url)
        assert list(before.values()) == ["active"]

        started = time.monotonic()
        second = subprocess.run(
            make_serve_command(fresh_database_url, port),
            cwd=REPO,
            env=make_serve_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert time.monotonic() - started < 15
        message = second.stderr.splitlines()[0]
        assert message.startswith(f"make serve: port {port} on 127.0.0.1 is taken"), second.stderr
        assert f"PORT={port + 1} make serve" in message
        assert "Bearer token" not in second.stdout
        assert make_serve_tokens(fresh_database_url) == before, "a failed make serve minted a token"
        assert users_status(first.base_url, first.token) == 200

    # Run again once the port is free: a new token, and the earlier one is revoked, not piled up.
    with make_serve(fresh_database_url, port, tmp_path / "third.log") as third:
        assert third.token != first.token
        assert users_status(third.base_url, third.token) == 200
        assert users_status(third.base_url, first.token) == 401
        assert "revoked 1 token(s) of earlier `make serve` runs" in third.text()
        after = make_serve_tokens(fresh_database_url)
        assert sorted(after.values()) == ["active", "revoked"]
        assert after[next(iter(before))] == "revoked"
