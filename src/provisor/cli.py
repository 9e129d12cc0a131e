"""The `provisor` command line (DESIGN.md section 1). Every flag has a `PROVISOR_*` env twin."""

from __future__ import annotations

import os
import signal
from typing import Any

import click
import orjson

from provisor.cli_common import database_option, run_migrated
from provisor.config import Settings
from provisor.storage.tenants import DEFAULT_TENANT, ensure_tenant, list_tenants
from provisor.storage.transactions import read_transaction, write_transaction

_run = run_migrated


@click.group()
@click.version_option(package_name="provisor")
def main() -> None:
    """Provisor: a SCIM 2.0 provisioning server."""


@main.command()
@click.option("--host", envvar="PROVISOR_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="PROVISOR_PORT", default=8000, show_default=True, type=int)
@database_option
@click.option("--workers", envvar="PROVISOR_WORKERS", default=1, show_default=True, type=int)
@click.option("--base-url", envvar="PROVISOR_BASE_URL", default=None, help="Public base URL of the SCIM API.")
@click.option(
    "--schema-extension",
    "schema_extensions",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A custom schema extension (RFC 7643 JSON); repeatable.",
)
@click.option("--log-level", envvar="PROVISOR_LOG_LEVEL", default="info", show_default=True)
@click.option(
    "--log-format",
    envvar="PROVISOR_LOG_FORMAT",
    type=click.Choice(["json", "text"]),
    default=None,
    help="Log lines as JSON or text [default: json unless stderr is a terminal].",
)
@click.option(
    "--allow-insecure-database",
    envvar="PROVISOR_ALLOW_INSECURE_DATABASE",
    is_flag=True,
    help="Serve from a PostgreSQL on another host without a password.",
)
def serve(
    host: str,
    port: int,
    database_url: str,
    workers: int,
    base_url: str | None,
    schema_extensions: tuple[str, ...],
    log_level: str,
    log_format: str | None,
    allow_insecure_database: bool,
) -> None:
    """Serve the SCIM API (migrations run first, once, in this process)."""
    import uvicorn

    from provisor.dbcheck import insecure_database_reason
    from provisor.logging_setup import logging_config, resolve_format
    from provisor.telemetry.metrics import MULTIPROC_ENV
    from provisor.telemetry.multiproc import metrics_directory
    from provisor.workers import reuse_port_supported, run_workers

    reason = insecure_database_reason(database_url)
    if reason and not allow_insecure_database:
        raise click.ClickException(f"refusing to serve: {reason}")
    _run(database_url, _prepare)
    os.environ["PROVISOR_DATABASE_URL"] = database_url
    if base_url:
        os.environ["PROVISOR_BASE_URL"] = base_url
    if schema_extensions:
        os.environ["PROVISOR_SCHEMA_EXTENSIONS"] = os.pathsep.join(
            os.path.abspath(p) for p in schema_extensions
        )
    os.environ["PROVISOR_LOG_LEVEL"] = log_level
    try:
        settings = Settings.from_env()  # fail fast on bad configuration, before forking workers
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "log_level": log_level.lower(),
        "access_log": False,
        "log_config": logging_config(resolve_format(log_format), log_level),
        "proxy_headers": True,
        "server_header": False,
    }
    metrics_probe(settings.metrics_address)
    if workers == 1:
        # One process: its metrics stay in memory, and a scrape reports it alone.
        os.environ.pop(MULTIPROC_ENV, None)
        # uvicorn finishes the requests in flight on SIGTERM and then raises the signal again
        # under the handler it found: a handler that returns makes a graceful stop exit 0.
        signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
        uvicorn.run("provisor.http.factory:app_from_env", workers=workers, **options)
        return
    with metrics_directory():  # every worker's metrics in one scrape (telemetry/multiproc.py)
        if reuse_port_supported():
            run_workers(uvicorn.Config("provisor.http.factory:app_from_env", **options), workers)
        else:
            uvicorn.run("provisor.http.factory:app_from_env", workers=workers, **options)


def metrics_probe(address: str) -> None:
    """Fail in this process, before any worker starts, when the metrics address is taken."""
    from provisor.http.metrics import parse_address
    from provisor.workers import listening_socket

    parsed = parse_address(address)
    if parsed is None:
        return
    try:
        listening_socket(*parsed, reuse_port=False).close()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen for metrics on {address} ({exc.strerror}); "
            "choose another PROVISOR_METRICS_ADDRESS or stop what uses it"
        ) from None


async def _prepare(engine: Any) -> None:
    async with write_transaction(engine) as conn:
        await ensure_tenant(conn, DEFAULT_TENANT)


@main.command()
@database_option
def migrate(database_url: str) -> None:
    """Bring the database schema up to date (idempotent)."""
    _run(database_url, _prepare)
    click.echo("database is up to date")


@main.group()
def token() -> None:
    """Create, list and revoke bearer tokens."""


@token.command("create")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True)
@click.option("--name", default="token", show_default=True)
@click.option("--admin", is_flag=True, help="An admin token for /admin/... (cannot call the SCIM API).")
@click.option("--expires-in", default=None, help="Lifetime, e.g. 30d, 12h, 15m (default: no expiry).")
@database_option
def token_create(tenant: str, name: str, admin: bool, expires_in: str | None, database_url: str) -> None:
    """Mint a token. The secret is printed once, alone on the last line."""
    from datetime import UTC, datetime

    from provisor.cli_events import parse_duration
    from provisor.clock import format_instant
    from provisor.storage.tokens import create_token

    expires_at = format_instant(datetime.now(UTC) + parse_duration(expires_in)) if expires_in else None

    async def work(engine: Any) -> str:
        async with write_transaction(engine) as conn:
            if not admin:
                await ensure_tenant(conn, tenant)
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

    click.echo(_run(database_url, work))


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

    _run(database_url, work)


@token.command("revoke")
@click.argument("token_id")
@database_option
def token_revoke(token_id: str, database_url: str) -> None:
    """Revoke a token; every worker refuses it once this returns (docs/security.md)."""
    from provisor.storage.auth_cache import auth_write
    from provisor.storage.tokens import revoke

    async def work(engine: Any) -> bool:
        async with auth_write(engine) as conn:
            return await revoke(conn, token_id)  # the barrier runs as the block exits

    if not _run(database_url, work):
        raise click.ClickException(f"no active token {token_id}")
    click.echo(f"revoked {token_id}")


@main.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("name")
@database_option
def tenant_create(name: str, database_url: str) -> None:
    async def work(engine: Any) -> None:
        async with write_transaction(engine) as conn:
            await ensure_tenant(conn, name)

    _run(database_url, work)
    click.echo(f"tenant {name} exists")


@tenant.command("list")
@database_option
def tenant_list(database_url: str) -> None:
    async def work(engine: Any) -> None:
        async with read_transaction(engine) as conn:
            for row in await list_tenants(conn):
                click.echo(f"{row['id']}  {orjson.dumps(row['settings']).decode()}")

    _run(database_url, work)


from provisor.cli_events import events, webhook  # noqa: E402

main.add_command(events)
main.add_command(webhook)

from provisor.cli_log import log_group  # noqa: E402
from provisor.cli_tenant import register as register_tenant_commands  # noqa: E402

main.add_command(log_group)
register_tenant_commands(tenant)

from provisor.cli_bulk import export_command, import_command  # noqa: E402  (needs `main` above)

main.add_command(import_command)
main.add_command(export_command)
from provisor.cli_rotate import token_rotate  # noqa: E402

token.add_command(token_rotate)

from provisor.cli_backup import backup_command, restore_command  # noqa: E402

main.add_command(backup_command)
main.add_command(restore_command)
from provisor.cli_setup_link import setup_link  # noqa: E402

main.add_command(setup_link)
from provisor.cli_consumers import register as register_consumer_commands  # noqa: E402

register_consumer_commands(main)
from provisor.cli_entitlements import entitlements  # noqa: E402

main.add_command(entitlements)

if __name__ == "__main__":  # pragma: no cover
    main()
