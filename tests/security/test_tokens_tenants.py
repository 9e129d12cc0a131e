"""Token expiry and revocation take effect once each worker hears of them; `token list` never shows
secrets; `tenant set` validates; `tenant delete` refuses while resources exist unless --force."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from provisor.cli import main
from provisor.storage.auth_cache import auth_write
from provisor.storage.tables import attribute_index, events, group_members, resources, tenants, tokens
from provisor.storage.transactions import read_transaction
from provisor.tenant_settings import parse_assignments
from tests.scim_client import Scim, assert_error, changed_elsewhere, run_db
from tests.security.helpers import admin_get


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_token_create_with_expiry_and_list(database_url: str, tenant_id: str) -> None:
    created = cli(
        "token",
        "create",
        "--tenant",
        tenant_id,
        "--create-tenant",
        "--name",
        "okta",
        "--expires-in",
        "30d",
        "--database-url",
        database_url,
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("prv_")

    async def stored(engine: Any) -> Any:
        async with read_transaction(engine) as conn:
            return (
                (await conn.execute(select(tokens).where(tokens.c.tenant_id == tenant_id))).mappings().one()
            )

    row = run_db(database_url, stored)
    expires = datetime.strptime(row["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    listed = cli("token", "list", "--database-url", database_url)
    assert listed.exit_code == 0
    line = next(line for line in listed.output.splitlines() if tenant_id in line)
    assert "okta" in line and "created" in line and "last used never" in line
    assert f"expires {row['expires_at']}" in line and line.endswith("active")
    assert secret not in listed.output and row["secret_hash"] not in listed.output
    bad = cli("token", "create", "--expires-in", "soon", "--database-url", database_url)
    assert bad.exit_code != 0


def _set_token(database_url: str, secret_tenant: str, **values: Any) -> None:
    """As Provisor's own tools change tokens (`auth_write`): every worker's cache follows on return."""

    async def work(engine: Any) -> None:
        async with auth_write(engine) as conn:
            await conn.execute(update(tokens).where(tokens.c.tenant_id == secret_tenant).values(**values))

    run_db(database_url, work)


def test_expiry_takes_effect_once_the_worker_hears_of_it(scim: Scim) -> None:
    assert scim.get("/Users").status_code == 200
    changed_elsewhere(
        scim.client,
        lambda: _set_token(scim.database_url, scim.tenant_id, expires_at="2000-01-01T00:00:00.000000Z"),
    )
    response = assert_error(scim.get("/Users"), 401)
    assert response["detail"] == "missing or invalid bearer token"  # no hint why
    assert scim.get("/Users").headers["www-authenticate"].startswith("Bearer")
    changed_elsewhere(
        scim.client,
        lambda: _set_token(scim.database_url, scim.tenant_id, expires_at="2999-01-01T00:00:00.000000Z"),
    )
    assert scim.get("/Users").status_code == 200


def test_revocation_takes_effect_once_the_worker_hears_of_it(scim: Scim) -> None:
    assert scim.get("/Users").status_code == 200

    async def token_id(engine: Any) -> str:
        async with read_transaction(engine) as conn:
            return str(
                (
                    await conn.execute(select(tokens.c.id).where(tokens.c.tenant_id == scim.tenant_id))
                ).scalar_one()
            )

    tid = run_db(scim.database_url, token_id)
    results = []
    changed_elsewhere(
        scim.client, lambda: results.append(cli("token", "revoke", tid, "--database-url", scim.database_url))
    )
    assert results[0].exit_code == 0, results[0].output
    assert_error(scim.get("/Users"), 401)
    assert_error(scim.post("/Users", {"userName": "after-revoke"}), 401)
    assert cli("token", "revoke", tid, "--database-url", scim.database_url).exit_code != 0


def test_admin_and_scim_tokens_do_not_cross(scim: Scim) -> None:
    assert (
        scim.client.get("/admin/v1/events", headers={"Authorization": f"Bearer {scim.token}"}).status_code
        == 401
    )
    assert admin_get(scim, "/events").status_code == 200
    from tests.scim_client import mint_token

    admin = mint_token(scim.database_url, None, kind="admin")
    assert scim.client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {admin}"}).status_code == 401


def test_tenant_settings_validation() -> None:
    assert parse_assignments(["strict_patch=true", "max_page_size=50", "request_log=full"]) == {
        "strict_patch": True,
        "max_page_size": 50,
        "request_log": "full",
    }
    assert parse_assignments(["rate_limit_per_second=2.5", "rate_limit_burst=null"]) == {
        "rate_limit_per_second": 2.5,
        "rate_limit_burst": None,
    }
    for bad in (
        "unknown=1",
        "strict_patch=yes",
        "max_page_size=0",
        "max_page_size=1.5",
        "rate_limit_per_second=-1",
        "rate_limit_burst=0.5",
        "request_log=verbose",
        "novalue",
    ):
        with pytest.raises(ValueError):
            parse_assignments([bad])


def test_tenant_cli_lifecycle(scim: Scim) -> None:
    url, name = scim.database_url, f"cli-{uuid.uuid4().hex[:8]}"
    assert cli("tenant", "create", name, "--database-url", url).exit_code == 0
    result = cli("tenant", "set", name, "rate_limit_per_second=3", "request_log=full", "--database-url", url)
    assert result.exit_code == 0, result.output
    assert '"rate_limit_per_second":3' in result.output
    assert cli("tenant", "set", name, "bogus=1", "--database-url", url).exit_code != 0
    assert cli("tenant", "set", "no-such-tenant-x", "strict_patch=true", "--database-url", url).exit_code != 0
    listed = cli("tenant", "list", "--database-url", url)
    assert name in listed.output and '"request_log":"full"' in listed.output
    assert cli("tenant", "delete", name, "--database-url", url).exit_code == 0
    assert name not in cli("tenant", "list", "--database-url", url).output


def test_tenant_settings_apply_to_the_next_request(scim: Scim) -> None:
    scim.create_user("a")
    scim.create_user("b")
    assert (
        cli("tenant", "set", scim.tenant_id, "max_page_size=1", "--database-url", scim.database_url).exit_code
        == 0
    )
    assert scim.get("/Users").json()["itemsPerPage"] == 1


def test_tenant_delete_refuses_with_resources_unless_forced(scim: Scim) -> None:
    user = scim.create_user("keep")
    scim.create_group("team", members=[user["id"]])
    url = scim.database_url
    refused = cli("tenant", "delete", scim.tenant_id, "--database-url", url)
    assert refused.exit_code != 0 and "--force" in refused.output
    assert scim.get(f"/Users/{user['id']}").status_code == 200
    bystander_user = None
    from tests.security.helpers import other_tenant

    bystander = other_tenant(scim)
    bystander_user = bystander.create_user("keep")
    forced = cli("tenant", "delete", scim.tenant_id, "--force", "--database-url", url)
    assert forced.exit_code == 0, forced.output
    assert_error(scim.get("/Users"), 401)  # its tokens went with it

    async def counts(engine: Any) -> tuple[int, ...]:
        async with read_transaction(engine) as conn:
            out = []
            for table in (resources, attribute_index, group_members, events, tokens, tenants):
                column = table.c.id if table is tenants else table.c.tenant_id
                out.append(
                    int(
                        (
                            await conn.execute(select(func.count()).where(column == scim.tenant_id))
                        ).scalar_one()
                    )
                )
            return tuple(out)

    assert run_db(url, counts) == (0, 0, 0, 0, 0, 0)
    assert bystander.get(f"/Users/{bystander_user['id']}").status_code == 200
