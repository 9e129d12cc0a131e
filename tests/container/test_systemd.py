"""deploy/systemd/provisor.service run for real: systemd as PID 1 in a container (this machine's PID 1
is not systemd), with the wheel installed at /opt/provisor as the unit's header says and the
repository's unit file mounted in. `systemd-analyze verify` and `security --offline=yes` judge the unit;
`systemctl start` runs it with all its hardening (dynamic user, seccomp, read-only system, private
users), the README walk-through runs against it on SQLite (its StateDirectory) and PostgreSQL, and
`systemctl stop` drains it to a clean exit.

The container is privileged so that systemd may build the sandbox (mount and user namespaces); it
shares the host's network so the service reaches the machine's PostgreSQL on loopback.
Run by `make image-test` (it needs `make image`'s Debian base and wheels).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.container.podman_tools import REPO, answers_ready, podman, run_walkthrough, wait_until
from tests.live.server import free_port

TEST_IMAGE = "localhost/provisor-systemd-test:latest"
UNIT = "/etc/systemd/system/provisor.service"
# Regression guard: the unit rates 1.1 with bookworm's systemd 252; a lost hardening option pushes it up.
MAX_EXPOSURE = 1.1


@dataclass(frozen=True)
class Machine:
    name: str
    config: Path  # mounted at /etc/provisor (the unit's EnvironmentFile)

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=check)

    def show(self, *properties: str) -> dict[str, str]:
        shown = self.run("systemctl", "show", "provisor", *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in shown.splitlines())

    def journal(self) -> str:
        return self.run("journalctl", "-u", "provisor", "--no-pager", "-n", "30", check=False).stdout


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    # Layers are cached: after the first build only the wheel install is redone.
    podman(
        "build", "--quiet", "--format", "docker", "-t", TEST_IMAGE,
        "-f", "tests/container/systemd/Containerfile", str(REPO),
        timeout=900,
    )  # fmt: skip
    config = tmp_path_factory.mktemp("etc-provisor")
    (config / "provisor.env").write_text("")
    made = Machine(f"provisor-systemd-{uuid.uuid4().hex[:8]}", config)
    podman(
        "run", "-d", "--name", made.name, "--systemd=always", "--privileged", "--network", "host",
        "-v", f"{REPO / 'deploy' / 'systemd' / 'provisor.service'}:{UNIT}:ro",
        "-v", f"{config}:/etc/provisor:ro",
        TEST_IMAGE,
    )  # fmt: skip
    try:
        state = lambda: made.run("systemctl", "is-system-running", check=False).stdout.strip()  # noqa: E731
        wait_until("systemd up", lambda: state() in ("running", "degraded"), 60, state)
        yield made
    finally:
        podman("rm", "-f", "-v", "-t", "5", made.name, check=False)


def test_systemd_analyze_verify_finds_nothing(machine: Machine) -> None:
    verified = machine.run("systemd-analyze", "verify", UNIT, check=False)
    assert verified.returncode == 0 and verified.stdout + verified.stderr == "", verified.stderr


def test_security_exposure_stays_low(machine: Machine) -> None:
    report = machine.run("systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT).stdout
    exposure = float(re.findall(r"Overall exposure level for provisor\.service: ([0-9.]+)", report)[0])
    assert exposure <= MAX_EXPOSURE, report


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_unit_serves_hardened_and_stops_cleanly(
    machine: Machine, database: str, request: pytest.FixtureRequest
) -> None:
    port, token = free_port(), secrets.token_hex(32)
    env = [
        "PROVISOR_HOST=127.0.0.1",
        f"PROVISOR_PORT={port}",
        f"PROVISOR_TOKEN={token}",
        "PROVISOR_WORKERS=2",
    ]
    if database == "postgresql":
        env.append(f"PROVISOR_DATABASE_URL={request.getfixturevalue('postgresql_url')}")
    (machine.config / "provisor.env").write_text("\n".join(env) + "\n")
    machine.run("systemctl", "start", "provisor")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until("the unit ready", lambda: answers_ready(base), 90, machine.journal)
        main_pid = machine.show("MainPID")["MainPID"]
        status = machine.run("cat", f"/proc/{main_pid}/status").stdout
        fields = dict(re.findall(r"^(\w+):\s+(.*)$", status, re.MULTILINE))
        uid = fields["Uid"].split()[0]
        assert uid != "0" and fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2", status
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, status
        # PrivateUsers: its user namespace maps root and its own uid, nobody else.
        uid_map = machine.run("cat", f"/proc/{main_pid}/uid_map").stdout.split()
        assert uid_map == ["0", "0", "1", uid, uid, "1"], uid_map

        lines = run_walkthrough(token, base)
        assert lines[1] == "201" and lines[-2:] == ["204", "404"], lines[-5:]
        if database == "sqlite":
            # DynamicUser + StateDirectory: the database lives in /var/lib/private/provisor.
            machine.run("test", "-s", "/var/lib/private/provisor/provisor.db")
    finally:
        machine.run("systemctl", "stop", "provisor", check=False)
    # SIGTERM drained the workers and the main process exited 0 (not killed at TimeoutStopSec).
    shown = machine.show("Result", "ExecMainStatus", "ActiveState")
    assert shown == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}, machine.journal()
