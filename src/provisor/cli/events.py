"""`provisor events ...` and `provisor webhook ...`: the event log and webhooks from the shell."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from provisor.cli.common import database_option, parse_duration, require_tenant, run_existing, run_migrated
from provisor.cli.errors import BadUsage, UnknownValue
from provisor.clock import format_instant
from provisor.events.model import OPS, Event, parse_ops
from provisor.storage import webhooks as store
from provisor.storage.event_log import latest_seq, prune_events, read_events
from provisor.storage.transactions import read_transaction, write_transaction


def _line(event: Event, as_json: bool) -> str:
    if as_json:
        return orjson.dumps(event.to_json()).decode()
    return (
        f"{event.seq:>8}  {event.at}  {event.tenant:12}  {event.resource_type:5}  {event.op:14}  "
        f"{event.resource_id}  {event.actor or '-'}"
    )


@click.group()
def events() -> None:
    """Read and prune the event log."""


@events.command("tail")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they are committed.")
@click.option("--after", type=int, default=None, help="Start after this seq (default: the last 20 events).")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@database_option
def events_tail(follow: bool, after: int | None, as_json: bool, database_url: str) -> None:
    """Print events in commit-safe order."""

    async def work(engine: Any) -> None:
        async with read_transaction(engine) as conn:
            cursor = after if after is not None else max(0, await latest_seq(conn) - 20)
        while True:
            async with read_transaction(engine) as conn:
                page = await read_events(conn, cursor, 500)
            for event in page.events:
                click.echo(_line(event, as_json))
            cursor = page.next
            if not page.events:
                if not follow:
                    return
                await asyncio.sleep(0.5)

    with contextlib.suppress(KeyboardInterrupt):
        run_existing(database_url, work)


@events.command("prune")
@click.option("--older-than", "older_than", default="30d", show_default=True, help="e.g. 30d, 12h.")
@database_option
def events_prune(older_than: str, database_url: str) -> None:
    """Delete old events, keeping any a webhook has not delivered yet."""
    cutoff = format_instant(datetime.now(UTC) - parse_duration(older_than))

    async def work(engine: Any) -> int:
        return await prune_events(engine, cutoff)

    click.echo(f"pruned {run_migrated(database_url, work)} events older than {cutoff}")


def unknown_webhook(webhook_id: str) -> UnknownValue:
    return UnknownValue(
        f"no webhook {webhook_id}", "`provisor webhook list` shows the webhooks and their ids"
    )


async def _require_webhook(conn: Any, webhook_id: str | None) -> None:
    if webhook_id is not None and webhook_id not in {hook.id for hook in await store.list_webhooks(conn)}:
        raise unknown_webhook(webhook_id)


@click.group()
def webhook() -> None:
    """Manage webhook subscriptions and their failed deliveries."""


@webhook.command("add")
@click.argument("url")
@click.option(
    "--secret",
    default="",
    help="Shared secret for the Provisor-Signature HMAC (and the HS256 SET signature); "
    "without it requests are unsigned.",
)
@click.option("--events", "ops", default=None, help=f"Comma-separated ops (default all): {', '.join(OPS)}.")
@click.option("--tenant", default=None, help="Only this tenant's events (default all tenants).")
@click.option("--format", "fmt", type=click.Choice(store.FORMATS), default="json", show_default=True)
@database_option
def webhook_add(
    url: str, secret: str, ops: str | None, tenant: str | None, fmt: str, database_url: str
) -> None:
    """Subscribe URL to events committed from now on; prints the webhook id last."""
    try:
        wanted = parse_ops(ops) or None if ops else None
    except ValueError as exc:
        raise UnknownValue(str(exc)) from None

    async def work(engine: Any) -> store.Webhook:
        async with write_transaction(engine) as conn:
            if tenant is not None:
                await require_tenant(conn, tenant)
            try:
                return await store.add_webhook(
                    conn, url=url, secret=secret, tenant_id=tenant, ops=wanted, format=fmt
                )
            except ValueError as exc:
                raise BadUsage(str(exc)) from None

    click.echo(run_migrated(database_url, work).id)


@webhook.command("list")
@database_option
def webhook_list(database_url: str) -> None:
    """List webhooks (never their secrets)."""

    async def work(engine: Any) -> list[store.Webhook]:
        async with read_transaction(engine) as conn:
            return await store.list_webhooks(conn)

    for hook in run_existing(database_url, work):
        ops = ",".join(hook.events) if hook.events is not None else "all"
        state = "disabled" if hook.disabled else "active"
        click.echo(f"{hook.id}  {hook.tenant_id or '*':12}  {hook.format:4}  {ops:24}  {state}  {hook.url}")


@webhook.command("remove")
@click.argument("webhook_id")
@database_option
def webhook_remove(webhook_id: str, database_url: str) -> None:
    """Delete a webhook and its delivery records."""

    async def work(engine: Any) -> bool:
        async with write_transaction(engine) as conn:
            return await store.remove_webhook(conn, webhook_id)

    if not run_migrated(database_url, work):
        raise unknown_webhook(webhook_id)
    click.echo(f"removed {webhook_id}")


@webhook.command("dead")
@click.option("--webhook", "webhook_id", default=None)
@database_option
def webhook_dead(webhook_id: str | None, database_url: str) -> None:
    """List deliveries that ran out of attempts."""

    async def work(engine: Any) -> list[dict[str, Any]]:
        async with read_transaction(engine) as conn:
            await _require_webhook(conn, webhook_id)
            return await store.dead_deliveries(conn, webhook_id)

    for row in run_existing(database_url, work):
        click.echo(
            f"{row['webhook_id']}  seq {row['event_seq']}  {row['resource_id']}  "
            f"attempts {row['attempts']}  {row['last_error'] or ''}"
        )


@webhook.command("redrive")
@click.option("--webhook", "webhook_id", default=None, help="Only this webhook (default all).")
@database_option
def webhook_redrive(webhook_id: str | None, database_url: str) -> None:
    """Make dead deliveries pending again (sent by the next running worker)."""

    async def work(engine: Any) -> int:
        async with write_transaction(engine) as conn:
            await _require_webhook(conn, webhook_id)
            return await store.redrive(conn, webhook_id)

    click.echo(f"redriven {run_migrated(database_url, work)} deliveries")
