"""compose.yaml run for real with podman-compose: Provisor's image over the compose file's PostgreSQL
(`PROVISOR_POSTGRES_IMAGE`, built from Debian's packages by `make postgres-image`, since no registry is
reachable here), brought up as docs/deployment.md prints it. The README walk-through runs against it,
the data lives in the compose PostgreSQL and survives `down` and `up`, and `down -v` leaves nothing.

Run by `make image-test`. podman-compose 1.0.3 (Debian bookworm) starts Provisor without waiting for
`condition: service_healthy`; `restart: unless-stopped` covers a start that meets no database yet.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.container.podman_tools import (
    ENV,
    IMAGE,
    POSTGRES_IMAGE,
    REPO,
    answers_ready,
    healthy,
    podman,
    run_walkthrough,
    wait_until,
)
from tests.live.server import free_port

USER = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "grace@example.com"}


@dataclass(frozen=True)
class Project:
    name: str
    env: dict[str, str]
    base: str
    token: str

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"  # podman-compose 1.0.3's naming

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman-compose", "-p", self.name, "-f", str(REPO / "compose.yaml"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (
            f"podman-compose {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
        return done

    def logs(self) -> str:
        parts = []
        for service in ("postgres", "provisor"):
            shown = podman("logs", "--tail", "20", self.container(service), check=False)
            parts.append(f"--- {service}:\n{shown.stdout}{shown.stderr}")
        return "\n".join(parts)

    def up(self) -> None:
        """`up -d`, then the compose health check of PostgreSQL and Provisor's /readyz."""
        self.compose("up", "-d")
        postgres = self.container("postgres")
        wait_until("PostgreSQL healthy", lambda: healthy(postgres), 120, self.logs)
        wait_until("Provisor ready", lambda: answers_ready(self.base), 120, self.logs)

    def psql(self, sql: str) -> str:
        # Inside the container the Unix socket trusts its callers (deploy/container/postgres/entrypoint.sh).
        command = ("psql", "-U", "provisor", "-d", "provisor", "-tAc", sql)
        return podman("exec", self.container("postgres"), *command).stdout.strip()

    def leftovers(self) -> list[str]:
        label = f"label=io.podman.compose.project={self.name}"
        found = podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split()
        found += podman("volume", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split()
        found += podman("network", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split()
        return found


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    if shutil.which("podman-compose") is None:
        pytest.fail("podman-compose is missing (apt-get install podman-compose); `make image-test` needs it")
    port = free_port()
    env = {k: v for k, v in ENV.items() if k not in ("PROVISOR_BASE_URL", "PROVISOR_WORKERS")}
    token = secrets.token_hex(32)
    env.update(
        POSTGRES_PASSWORD=secrets.token_hex(16),
        PROVISOR_TOKEN=token,
        PROVISOR_IMAGE=IMAGE,
        PROVISOR_POSTGRES_IMAGE=POSTGRES_IMAGE,
        PROVISOR_PUBLISHED_PORT=str(port),
    )
    made = Project(f"provisortest{uuid.uuid4().hex[:8]}", env, f"http://127.0.0.1:{port}", token)
    try:
        made.up()
        yield made
    finally:
        made.compose("down", "-v")
        # podman-compose 1.0.3 leaves the project's network behind; docker compose removes it.
        podman("network", "rm", f"{made.name}_default", check=False)
    assert made.leftovers() == [], "down -v and the network removal leave nothing of the project"


def test_both_health_checks_pass(project: Project) -> None:
    for service in ("postgres", "provisor"):
        assert healthy(project.container(service)), project.logs()
        status = podman("inspect", "--format", "{{.State.Health.Status}}", project.container(service))
        assert status.stdout.strip() == "healthy"


def test_readme_walkthrough_on_the_compose_postgresql(project: Project) -> None:
    """The walk-through with the static token compose passed in, and its events in the compose database."""
    lines = run_walkthrough(project.token, project.base)
    assert lines[1] == "201" and lines[-2:] == ["204", "404"], lines[-5:]
    ready = httpx.get(f"{project.base}/readyz").json()
    assert ready["status"] == "ready"
    # Created, replaced, deactivated, deleted: in the compose PostgreSQL, not in a SQLite of the image.
    ops = project.psql("SELECT op FROM events ORDER BY seq").split()
    assert ops.count("created") >= 1 and ops.count("deleted") >= 1, ops


def test_data_survives_down_and_up(project: Project) -> None:
    """`down` without -v keeps the pgdata volume: the next `up` reuses the cluster (no second initdb)."""
    auth = {"Authorization": f"Bearer {project.token}"}
    made = httpx.post(f"{project.base}/scim/v2/Users", json=USER, headers=auth)
    assert made.status_code == 201, made.text
    project.compose("down")
    project.up()
    kept = httpx.get(f"{project.base}/scim/v2/Users/{made.json()['id']}", headers=auth)
    assert kept.status_code == 200 and kept.json()["userName"] == USER["userName"]
    logs = podman("logs", project.container("postgres")).stdout
    assert "made the cluster" not in logs, "the second start found the cluster in the volume"
