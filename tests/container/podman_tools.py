"""What the container tests share: podman with the repository's containers.conf, the README's client
block as it runs against a container, and waiting for a server or a health check."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.live.test_readme_walkthrough import walkthrough_blocks

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("PROVISOR_IMAGE", "provisor:latest")
# Built by `make postgres-image` from Debian's packages (no registry here).
POSTGRES_IMAGE = os.environ.get("PROVISOR_POSTGRES_IMAGE", "localhost/provisor-postgres:15")
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


def run_walkthrough(token: str, base: str) -> list[str]:
    """Run the client block against `base` (the server's root URL); its output lines."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_walkthrough()],
        env={**os.environ, "T": token, "B": f"{base}/scim/v2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def wait_until(what: str, done: Callable[[], bool], timeout: float, explain: Callable[[], str]) -> None:
    """Poll `done` until it holds; fail with `explain()` (the logs) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout:.0f} s: {explain()}")
        time.sleep(0.5)


def answers_ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def healthy(container: str) -> bool:
    """Run the container's health check now. Podman schedules health checks with systemd timers, so
    on a host without systemd nothing runs them unless asked; a run records the status too."""
    return podman("healthcheck", "run", container, check=False).returncode == 0
