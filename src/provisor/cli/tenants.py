"""`provisor tenant create|list|set|delete`: tenants and their per-tenant settings."""

from __future__ import annotations

from typing import Any

import click
import orjson

from provisor.cli.common import database_option, run_existing, run_migrated
from provisor.cli.errors import CliError, UnknownValue
from provisor.storage.auth_cache import auth_write
from provisor.storage.tenants import (
    count_resources,
    delete_tenant,
    ensure_tenant,
    list_tenants,
    tenant_exists,
    update_settings,
)
from provisor.storage.transactions import read_transaction, write_transaction
from provisor.tenant_names import check_tenant_name
from provisor.tenant_settings import parse_assignments


@click.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("name")
@database_option
def tenant_create(name: str, database_url: str) -> None:
    """Create a tenant (says so when it already existed; exit 0 either way)."""
    check_tenant_name(name)

    async def work(engine: Any) -> bool:
        async with write_transaction(engine) as conn:
            return await ensure_tenant(conn, name)

    created = run_migrated(database_url, work)
    click.echo(f"created tenant {name}" if created else f"tenant {name} already exists")


@tenant.command("list")
@database_option
def tenant_list(database_url: str) -> None:
    async def work(engine: Any) -> None:
        async with read_transaction(engine) as conn:
            for row in await list_tenants(conn):
                click.echo(f"{row['id']}  {orjson.dumps(row['settings']).decode()}")

    run_existing(database_url, work)


@tenant.command("set")
@click.argument("name")
@click.argument("assignments", nargs=-1, required=True)
@database_option
def tenant_set(name: str, assignments: tuple[str, ...], database_url: str) -> None:
    """Change settings: `provisor tenant set NAME key=value ...` (`key=null` restores the default)."""
    try:
        changes = parse_assignments(assignments)
    except ValueError as exc:
        raise UnknownValue(str(exc)) from None

    async def work(engine: Any) -> dict[str, Any] | None:
        async with auth_write(engine) as conn:  # workers cache tenants and settings with tokens
            if not await tenant_exists(conn, name):
                return None
            return await update_settings(conn, name, changes)

    merged = run_migrated(database_url, work)
    if merged is None:
        raise UnknownValue(f"no tenant {name}", f"create it with `provisor tenant create {name}`")
    click.echo(f"{name}  {orjson.dumps(merged).decode()}")


@tenant.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete every resource, event, token and log row.")
@database_option
def tenant_delete(name: str, force: bool, database_url: str) -> None:
    """Delete a tenant; refuses while it has resources unless --force."""

    async def work(engine: Any) -> str:
        async with auth_write(engine) as conn:  # workers cache tenants and settings with tokens
            if not await tenant_exists(conn, name):
                return "missing"
            held = await count_resources(conn, name)
            if held and not force:
                return f"held:{held}"
            await delete_tenant(conn, name)
            return "deleted"

    outcome = run_migrated(database_url, work)
    if outcome == "missing":
        raise UnknownValue(f"no tenant {name}", "`provisor tenant list` shows the tenants")
    if outcome.startswith("held:"):
        raise CliError(f"tenant {name} still has {outcome[5:]} resources; use --force to delete them too")
    click.echo(f"deleted tenant {name}")
