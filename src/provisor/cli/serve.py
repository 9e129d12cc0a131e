"""`provisor serve` and `provisor migrate`: run the server, bring the schema up to date."""

from __future__ import annotations

import functools
import os
import signal
from typing import Any

import click

from provisor.cli.common import database_option, run_migrated
from provisor.cli.errors import CliError, remember_log_level
from provisor.config import LOG_LEVELS, Settings


@click.command()
@click.option("--host", envvar="PROVISOR_HOST", default="127.0.0.1", show_default=True)
@click.option(
    "--port", envvar="PROVISOR_PORT", default=8000, show_default=True, type=click.IntRange(0, 65535)
)
@database_option
@click.option(
    "--workers", envvar="PROVISOR_WORKERS", default=1, show_default=True, type=click.IntRange(min=1)
)
@click.option("--base-url", envvar="PROVISOR_BASE_URL", default=None, help="Public base URL of the SCIM API.")
@click.option(
    "--schema-extension",
    "schema_extensions",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A custom schema extension (RFC 7643 JSON); repeatable.",
)
@click.option(
    "--log-level",
    envvar="PROVISOR_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    callback=remember_log_level,
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

    from provisor.http.factory import app_from_settings
    from provisor.http.protocol import CoalescingHttpToolsProtocol
    from provisor.logging_setup import logging_config, resolve_format
    from provisor.storage.dbcheck import insecure_database_reason
    from provisor.telemetry.metrics import MULTIPROC_ENV
    from provisor.telemetry.multiproc import metrics_directory
    from provisor.workers import check_port_free, reuse_port_supported, run_workers

    reason = insecure_database_reason(database_url)
    if reason and not allow_insecure_database:
        raise CliError(f"refusing to serve: {reason}")
    # Flags win over PROVISOR_* variables; a bad variable or schema file stops here, before anything runs.
    settings = checked_settings(
        database_url=database_url,
        base_url=base_url or None,
        schema_extensions=tuple(os.path.abspath(p) for p in schema_extensions) or None,
        log_level=log_level.lower(),
        migrate_on_start=False,  # migrated once below, in this process; workers must not race
    )
    # Before migrating: a taken port is the commoner mistake, and it should not wait on the database.
    check_port_free(host, port)
    metrics_probe(settings.metrics_address)
    run_migrated(database_url, _prepared)
    # The workers get the settings as a value (pickled into a spawned worker), not via os.environ.
    app = functools.partial(app_from_settings, settings)
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "log_level": log_level.lower(),
        "access_log": False,
        "log_config": logging_config(resolve_format(log_format), log_level),
        "proxy_headers": True,
        "server_header": False,
        # A response's head and body in one write (http/protocol.py).
        "http": CoalescingHttpToolsProtocol,
    }
    if workers == 1:
        # One process: its metrics stay in memory, and a scrape reports it alone.
        os.environ.pop(MULTIPROC_ENV, None)
        # uvicorn finishes the requests in flight on SIGTERM and then raises the signal again
        # under the handler it found: a handler that returns makes a graceful stop exit 0.
        signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
        uvicorn.run(app, **options)
        return
    if not reuse_port_supported():
        raise CliError("--workers above 1 needs SO_REUSEPORT, which this system lacks", "run one worker")
    with metrics_directory():  # every worker's metrics in one scrape (telemetry/multiproc.py)
        run_workers(uvicorn.Config(app, **options), workers)


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
        raise CliError(
            f"cannot listen for metrics on {address} ({exc.strerror})",
            "choose another PROVISOR_METRICS_ADDRESS or stop what uses it",
        ) from None


def checked_settings(**overrides: Any) -> Settings:
    """The settings from the environment and `overrides`, with the schema extension files loaded once
    so that a bad file stops the command (exit 2) instead of every worker."""
    from provisor.schema.registry import default_registry

    settings = Settings.from_env(**overrides)
    default_registry(settings.schema_extensions)
    return settings


async def _prepared(_engine: Any) -> None:
    """Nothing more: `run_migrated` has migrated and made the default tenant."""


@click.command()
@database_option
def migrate(database_url: str) -> None:
    """Bring the database schema up to date (idempotent)."""
    checked_settings(database_url=database_url)
    run_migrated(database_url, _prepared)
    click.echo("database is up to date")
