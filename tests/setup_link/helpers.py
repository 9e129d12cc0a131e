"""Shared steps for the setup-link tests: the CLI as a process, a live server's root URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROVISOR = str(Path(sys.executable).with_name("provisor"))
SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROVISOR_BASE_URL"}
    return subprocess.run(
        [PROVISOR, *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def create_link(database_url: str, tenant: str, root: str, expires_in: str = "7d") -> str:
    """`provisor setup-link create`; returns the URL printed alone on the last line."""
    done = cli(
        "setup-link", "create", "--tenant", tenant, "--expires-in", expires_in, "--base-url", root,
        database_url=database_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith(f"{root}/setup/"), url
    return url


def scim_token(database_url: str, tenant: str, name: str) -> str:
    """`provisor token create --create-tenant` (a process: no event loop is needed in the test's thread)."""
    done = cli(
        "token", "create", "--tenant", tenant, "--create-tenant", "--name", name, database_url=database_url
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def link_id(url: str) -> str:
    return url.rsplit("/", 1)[1].split(".", 1)[0]


def root_of(scim_base: str) -> str:
    return scim_base.removesuffix("/scim/v2")
