"""The container image, run for real with podman: the README walk-through against it, on SQLite
(the image's default, in its volume) and on PostgreSQL; non-root; health check; SIGTERM exits 0.

Run by `make image-test` after `make image` (`make test` leaves tests/container out: building the image takes
minutes and needs podman). The image tag is `PROVISOR_IMAGE` (default `provisor:latest`).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live.server import free_port
from tests.live.test_readme_walkthrough import walkthrough_blocks

IMAGE = os.environ.get("PROVISOR_IMAGE", "provisor:latest")
REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "deploy" / "container" / "containers.conf")}


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, check=check, timeout=timeout
    )


def readme_walkthrough() -> str:
    """The README's client block up to its host-side part (`provisor token list` reads the host's
    database), with the typed-in token and base URL left to the environment."""
    client = walkthrough_blocks()[1].split("# the provisor command", 1)[0]
    return "\n".join(line for line in client.splitlines() if not line.startswith(("export T=", "export B=")))


@pytest.fixture(params=["sqlite", "postgresql"])
def container(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A running container on a free loopback port (host network): (container id, base URL)."""
    port = free_port()
    env = ["-e", "PROVISOR_HOST=127.0.0.1", "-e", f"PROVISOR_PORT={port}", "-e", "PROVISOR_LOG_LEVEL=warning"]
    if request.param == "postgresql":
        env += ["-e", f"PROVISOR_DATABASE_URL={request.getfixturevalue('postgresql_url')}"]
    name = f"provisor-test-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--network", "host", *env, IMAGE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                logs = podman("logs", name, check=False).stderr[-2000:]
                pytest.fail(f"container never became ready: {logs}")
            time.sleep(0.2)
        yield name, base
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)


def test_readme_walkthrough_against_the_container(container: tuple[str, str]) -> None:
    name, base = container
    minted = podman("exec", name, "provisor", "token", "create", "--name", "walk-through")
    token = minted.stdout.strip().splitlines()[-1]
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_walkthrough()],
        env={**os.environ, "T": token, "B": f"{base}/scim/v2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "201" and lines[-2:] == ["204", "404"], result.stdout[-500:]
    users = httpx.get(f"{base}/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}).json()
    assert users["totalResults"] == 0, "the walk-through deletes the user it made"


def test_runs_as_non_root_with_a_passing_health_check(container: tuple[str, str]) -> None:
    name, _ = container
    assert podman("exec", name, "id", "-u").stdout.strip() != "0"
    assert podman("healthcheck", "run", name, check=False).returncode == 0


def test_sigterm_stops_the_server_cleanly(container: tuple[str, str]) -> None:
    name, _ = container
    podman("stop", "-t", "20", name)
    state = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert state == "0"
