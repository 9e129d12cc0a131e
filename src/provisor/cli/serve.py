"""`provisor serve` and `provisor migrate`: run the server, bring the schema up to date."""

from __future__ import annotations

import os
from typing import Any

import click

from provisor.cli.common import database_option, run_migrated
from provisor.cli.errors import remember_log_level
from provisor.config import Settings
from provisor.storage.tenants import DEFAULT_TENANT, ensure_tenant
from provisor.storage.transactions import write_transaction


@click.command()
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
@click.option(
    "--log-level", envvar="PROVISOR_LOG_LEVEL", default="info", show_default=True, callback=remember_log_level
)
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
    from provisor.workers import check_port_free, reuse_port_supported, run_workers

    reason = insecure_database_reason(database_url)
    if reason and not allow_insecure_database:
        raise click.ClickException(f"refusing to serve: {reason}")
    # Before migrating: a taken port is the commoner mistake, and it should not wait on the database.
    check_port_free(host, port)
    run_migrated(database_url, _prepare)
    os.environ["PROVISOR_DATABASE_URL"] = database_url
    if base_url:
        os.environ["PROVISOR_BASE_URL"] = base_url
    if schema_extensions:
        os.environ["PROVISOR_SCHEMA_EXTENSIONS"] = os.pathsep.join(
            os.path.abspath(p) for p in schema_extensions
        )
    os.environ["PROVISOR_LOG_LEVEL"] = log_level
    Settings.from_env()  # fail fast on bad configuration, before forking workers
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
    if workers > 1 and reuse_port_supported():
        run_workers(uvicorn.Config("provisor.http.factory:app_from_env", **options), workers)
    else:
        uvicorn.run("provisor.http.factory:app_from_env", workers=workers, **options)


async def _prepare(engine: Any) -> None:
    async with write_transaction(engine) as conn:
        await ensure_tenant(conn, DEFAULT_TENANT)


@click.command()
@database_option
def migrate(database_url: str) -> None:
    """Bring the database schema up to date (idempotent)."""
    run_migrated(database_url, _prepare)
    click.echo("database is up to date")
