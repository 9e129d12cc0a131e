"""The container image, run for real with podman: the README walk-through against it, on SQLite
(the image's default, in its volume) and on PostgreSQL; non-root; health check; SIGTERM exits 0.

Run by `make image-test` after `make image` (`make test` leaves tests/container out: building the image takes
minutes and needs podman). The image tag is `PROVISOR_IMAGE` (default `provisor:latest`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.container.podman_tools import IMAGE, answers_ready, podman, run_walkthrough, wait_until
from tests.live.server import free_port


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
        wait_until(
            "the container ready",
            lambda: answers_ready(base),
            60,
            lambda: podman("logs", name, check=False).stderr[-2000:],
        )
        yield name, base
    finally:
        podman("rm", "-f", "-v", "-t", "2", name, check=False)  # -v: its anonymous volume too


def test_readme_walkthrough_against_the_container(container: tuple[str, str]) -> None:
    name, base = container
    minted = podman("exec", name, "provisor", "token", "create", "--name", "walk-through")
    token = minted.stdout.strip().splitlines()[-1]
    lines = run_walkthrough(token, base)
    assert lines[1] == "201" and lines[-2:] == ["204", "404"], lines[-5:]
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
