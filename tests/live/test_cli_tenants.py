"""Tenants are created only on purpose, and only under a valid name; run as real `provisor` processes."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.live.test_cli_errors import assert_short_error, run
from tests.scim_client import USER_URN


def tenants(url: str) -> set[str]:
    listed = run("tenant", "list", "--database-url", url)
    assert listed.returncode == 0, listed.stderr
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


def users_file(tmp_path: Path, *lines: bytes) -> Path:
    path = tmp_path / f"users{len(list(tmp_path.iterdir()))}.jsonl"
    doc = {"schemas": [USER_URN], "userName": "ada@example.com"}
    path.write_bytes(b"".join(line + b"\n" for line in (lines or (orjson.dumps(doc),))))
    return path


def test_token_create_refuses_an_unknown_tenant(database_url: str, tenant_id: str) -> None:
    result = run("token", "create", "--tenant", tenant_id, "--database-url", database_url)
    assert_short_error(result, 2, f"no tenant {tenant_id}", "provisor tenant create", "--create-tenant")
    assert tenant_id not in tenants(database_url)
    assert "prv_" not in result.stdout
    made = run("token", "create", "--tenant", tenant_id, "--create-tenant", "--database-url", database_url)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().splitlines()[-1].startswith("prv_")
    assert tenant_id in tenants(database_url)


def test_the_default_tenant_needs_no_creation(fresh_database_url: str) -> None:
    made = run("token", "create", "--database-url", fresh_database_url)
    assert made.returncode == 0, made.stderr
    assert "default" in tenants(fresh_database_url)


def test_export_of_an_unknown_tenant(database_url: str, tenant_id: str) -> None:
    result = run("export", "--tenant", tenant_id, "--database-url", database_url)
    assert_short_error(result, 2, f"no tenant {tenant_id}")
    assert tenant_id not in tenants(database_url)


def test_import_dry_run_and_refused_strict_create_no_tenant(
    database_url: str, tenant_id: str, tmp_path: Path
) -> None:
    good = users_file(tmp_path)
    refused = run("import", str(good), "--tenant", tenant_id, "--database-url", database_url)
    assert_short_error(refused, 2, f"no tenant {tenant_id}", "--create-tenant")
    dry = run(
        "import",
        str(good),
        "--tenant",
        tenant_id,
        "--create-tenant",
        "--dry-run",
        "--database-url",
        database_url,
    )
    assert dry.returncode == 0, dry.stderr
    assert "1 would be created" in dry.stderr
    bad = users_file(tmp_path, orjson.dumps({"schemas": [USER_URN], "userName": "a@x"}), b"[]")
    strict = run(
        "import",
        str(bad),
        "--tenant",
        tenant_id,
        "--create-tenant",
        "--strict",
        "--database-url",
        database_url,
    )
    assert strict.returncode == 1 and "nothing was written" in strict.stderr
    assert tenant_id not in tenants(database_url)
    done = run("import", str(good), "--tenant", tenant_id, "--create-tenant", "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    assert tenant_id in tenants(database_url)


@pytest.mark.parametrize("name", ["", "Bad Name!", ".leading-dot", "UPPER", "x" * 64, "a/b"])
def test_tenant_names_are_validated(fresh_database_url: str, name: str) -> None:
    result = run("tenant", "create", name, "--database-url", fresh_database_url)
    assert_short_error(result, 2, "tenant name", "lowercase")
    assert tenants(fresh_database_url) <= {"default"}


def test_tenant_create_says_whether_it_created(database_url: str, tenant_id: str) -> None:
    first = run("tenant", "create", tenant_id, "--database-url", database_url)
    assert first.returncode == 0, first.stderr
    assert f"created tenant {tenant_id}" in first.stdout
    again = run("tenant", "create", tenant_id, "--database-url", database_url)
    assert again.returncode == 0, again.stderr
    assert f"tenant {tenant_id} already exists" in again.stdout
    assert run("tenant", "create", "a.b_c-9", "--database-url", database_url).returncode == 0
