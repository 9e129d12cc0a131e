"""`provisor token create|list|revoke`: bearer tokens from the shell."""

from __future__ import annotations

from typing import Any

import click

from provisor.cli.common import (
    create_tenant_option,
    database_option,
    require_tenant,
    run_existing,
    run_migrated,
)
from provisor.cli.errors import UnknownValue
from provisor.storage.auth_cache import auth_write
from provisor.storage.tenants import DEFAULT_TENANT
from provisor.storage.transactions import read_transaction, write_transaction


@click.group()
def token() -> None:
    """Create, list and revoke bearer tokens."""


@token.command("create")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True)
@click.option("--name", default="token", show_default=True)
@create_tenant_option
@click.option("--admin", is_flag=True, help="An admin token for /admin/... (cannot call the SCIM API).")
@click.option("--expires-in", default=None, help="Lifetime, e.g. 30d, 12h, 15m (default: no expiry).")
@database_option
def token_create(
    tenant: str, name: str, create_tenant: bool, admin: bool, expires_in: str | None, database_url: str
) -> None:
    """Mint a token. The secret is printed once, alone on the last line."""
    from datetime import UTC, datetime

    from provisor.cli.common import parse_duration
    from provisor.clock import format_instant
    from provisor.storage.tokens import create_token

    expires_at = format_instant(datetime.now(UTC) + parse_duration(expires_in)) if expires_in else None

    async def work(engine: Any) -> str:
        async with write_transaction(engine) as conn:
            if not admin:
                await require_tenant(conn, tenant, create=create_tenant, creatable=True)
            info, secret = await create_token(
                conn,
                tenant_id=None if admin else tenant,
                name=name,
                kind="admin" if admin else "scim",
                expires_at=expires_at,
            )
        click.echo(
            f"created {info.kind} token {info.id} ({name}) for tenant {info.tenant_id or '-'}"
            f"{f', expires {expires_at}' if expires_at else ''}",
            err=True,
        )
        return secret

    click.echo(run_migrated(database_url, work))


@token.command("list")
@database_option
def token_list(database_url: str) -> None:
    """List tokens (never their secrets)."""
    from provisor.clock import now
    from provisor.storage.tokens import list_tokens

    async def work(engine: Any) -> None:
        at = now()
        async with read_transaction(engine) as conn:
            for info in await list_tokens(conn):
                expired = info.expires_at is not None and info.expires_at <= at
                state = "revoked" if info.revoked_at else "expired" if expired else "active"
                click.echo(
                    f"{info.id}  {info.kind:5}  {info.tenant_id or '-':12}  {info.name:20}  "
                    f"created {info.created}  last used {info.last_used or 'never'}  "
                    f"expires {info.expires_at or 'never'}  {state}"
                )

    run_existing(database_url, work)


@token.command("revoke")
@click.argument("token_id")
@database_option
def token_revoke(token_id: str, database_url: str) -> None:
    """Revoke a token; every worker refuses it once this returns (docs/security.md)."""
    from provisor.storage.tokens import revoke

    async def work(engine: Any) -> bool:
        async with auth_write(engine) as conn:  # every worker refuses it once this returns
            return await revoke(conn, token_id)

    if not run_migrated(database_url, work):
        raise UnknownValue(f"no active token {token_id}", "`provisor token list` shows the tokens")
    click.echo(f"revoked {token_id}")
