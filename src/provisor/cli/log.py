"""`provisor log tail`: the request log from the shell."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import click
import orjson

from provisor.cli.common import database_option
from provisor.storage.request_log import RequestFilter, latest_id, read_requests
from provisor.storage.transactions import read_transaction

FOLLOW_SECONDS = 0.5


def format_row(row: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return orjson.dumps(row).decode()
    query = f"?{row['query']}" if row.get("query") else ""
    unknown = row.get("unknown_attributes")
    ignored = f"  unknown: {','.join(unknown)}" if unknown else ""
    return (
        f"{row['at']}  {row['tenant_id'] or '-':12}  {row['status']:>3}  {row['duration_ms']:>8.1f}ms  "
        f"{row['method']:6} {row['path']}{query}  {row['token_name'] or '-'}  {row['request_id']}{ignored}"
    )


@click.group("log")
def log_group() -> None:
    """Read the request log."""


@log_group.command("tail")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new rows.")
@click.option("--errors", is_flag=True, help="Only responses with status >= 400.")
@click.option("--tenant", default=None, help="Only this tenant.")
@click.option("--json", "as_json", is_flag=True, help="One JSON row per line.")
@click.option("--lines", "-n", default=20, show_default=True, help="How many recent rows to start with.")
@database_option
def log_tail(
    follow: bool, errors: bool, tenant: str | None, as_json: bool, lines: int, database_url: str
) -> None:
    """Print recent requests (oldest first)."""
    from provisor.cli.common import require_tenant, run_existing

    where = RequestFilter(tenant=tenant, errors_only=errors)

    async def work(engine: Any) -> None:
        async with read_transaction(engine) as conn:
            if tenant is not None:
                await require_tenant(conn, tenant)
            top = await latest_id(conn)
            # Walk back far enough to find `lines` matching rows without scanning the whole table.
            cursor = max(0, top - max(lines, 1) * 50) if (tenant or errors) else max(0, top - lines)
            recent = await read_requests(conn, cursor, 100_000, where)
        for row in recent[-lines:] if lines > 0 else []:
            click.echo(format_row(row, as_json))
        cursor = recent[-1]["id"] if recent else top
        while follow:
            async with read_transaction(engine) as conn:
                rows = await read_requests(conn, cursor, 500, where)
            for row in rows:
                click.echo(format_row(row, as_json))
                cursor = row["id"]
            if not rows:
                await asyncio.sleep(FOLLOW_SECONDS)

    with contextlib.suppress(KeyboardInterrupt):
        run_existing(database_url, work)
