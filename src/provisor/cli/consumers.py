"""`provisor consumers ...` and `provisor deprovisioning list`: feed positions and offboarding proof.

The same storage and report as `/admin/v1/consumers` and `/admin/v1/deprovisioning`
(docs/reconciliation.md, docs/deprovisioning.md).
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from provisor.cli.common import database_option, parse_duration, run_existing, run_migrated
from provisor.service.deprovisioning import report
from provisor.storage import consumers as store
from provisor.storage.event_log import latest_seq
from provisor.storage.tenants import get_settings, tenant_exists
from provisor.storage.transactions import read_transaction, write_transaction

_run = run_migrated


def _show(consumer: store.Consumer, head: int) -> str:
    scope = consumer.tenant or "*"
    lag = head - consumer.seq
    return f"{consumer.name:24}  {scope:12}  seq {consumer.seq:>10}  lag {lag:>8}  {consumer.updated}"


@click.group()
def consumers() -> None:
    """Named feed consumers and their committed positions."""


@consumers.command("list")
@database_option
def consumers_list(database_url: str) -> None:
    """Every consumer: scope, position, lag behind the log's head, last commit."""

    async def work(engine: Any) -> tuple[list[store.Consumer], int]:
        async with read_transaction(engine) as conn:
            return await store.list_consumers(conn), await latest_seq(conn)

    found, head = run_existing(database_url, work)
    for consumer in found:
        click.echo(_show(consumer, head))


@consumers.command("show")
@click.argument("name")
@database_option
def consumers_show(name: str, database_url: str) -> None:
    """One consumer as JSON."""

    async def work(engine: Any) -> tuple[store.Consumer | None, int]:
        async with read_transaction(engine) as conn:
            return await store.get_consumer(conn, name), await latest_seq(conn)

    consumer, head = run_existing(database_url, work)
    if consumer is None:
        raise click.BadParameter(f"no consumer {name}; see `provisor consumers list`", param_hint="NAME")
    click.echo(orjson.dumps({**consumer.to_json(), "lag": head - consumer.seq, "head": head}).decode())


@consumers.command("commit")
@click.argument("name")
@click.argument("seq", type=int)
@click.option("--tenant", default=None, help="On the first commit: only this tenant's events (default all).")
@click.option("--force", is_flag=True, help="Allow moving the position backwards.")
@database_option
def consumers_commit(name: str, seq: int, tenant: str | None, force: bool, database_url: str) -> None:
    """Commit SEQ as NAME's position (creating the consumer on first commit)."""

    async def work(engine: Any) -> store.Consumer:
        async with write_transaction(engine) as conn:
            return await store.commit_position(conn, name, seq, tenant=tenant, force=force)

    try:
        consumer = _run(database_url, work)
    except store.PositionError as error:
        if error.status == 400:
            raise click.BadParameter(error.detail, param_hint="SEQ") from None
        raise click.ClickException(error.detail) from None
    click.echo(f"{consumer.name} at seq {consumer.seq}")


@consumers.command("delete")
@click.argument("name")
@database_option
def consumers_delete(name: str, database_url: str) -> None:
    """Delete a consumer and its acknowledgements (it no longer holds back pruning)."""

    async def work(engine: Any) -> bool:
        async with write_transaction(engine) as conn:
            return await store.delete_consumer(conn, name)

    if not _run(database_url, work):
        raise click.BadParameter(f"no consumer {name}; see `provisor consumers list`", param_hint="NAME")
    click.echo(f"deleted {name}")


@click.group()
def deprovisioning() -> None:
    """Deactivations and deletions, and which consumers acknowledged them."""


@deprovisioning.command("list")
@click.option("--tenant", required=True)
@click.option("--all", "everything", is_flag=True, help="Every event in the window, not only overdue ones.")
@click.option("--window", default="7d", show_default=True, help="Time-to-revoke window, e.g. 7d, 12h.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON (as the admin API returns it).")
@database_option
def deprovisioning_list(tenant: str, everything: bool, window: str, as_json: bool, database_url: str) -> None:
    """Deprovisioning some consumer has not acknowledged within the tenant's threshold."""
    seconds = int(parse_duration(window).total_seconds())

    async def work(engine: Any) -> dict[str, Any] | None:
        async with read_transaction(engine) as conn:
            if not await tenant_exists(conn, tenant):
                return None
            settings = await get_settings(conn, tenant)
            return await report(
                conn, tenant, settings, unacknowledged=not everything, window_seconds=seconds, limit=10_000
            )

    body = run_existing(database_url, work)
    if body is None:
        raise click.BadParameter(f"no tenant {tenant}; see `provisor tenant list`", param_hint="--tenant")
    if as_json:
        click.echo(orjson.dumps(body).decode())
        return
    for event in body["events"]:
        missing = sorted(name for name, at in event["acks"].items() if at is None)
        state = f"waiting for {', '.join(missing)}" if missing else "acknowledged by all"
        click.echo(f"{event['seq']:>10}  {event['at']}  {event['op']:11}  {event['resourceId']}  {state}")
    overdue = body["unacknowledged"]
    click.echo(f"{overdue['count']} unacknowledged after {body['thresholdSeconds']}s")
    for name, stats in body["timeToRevoke"].items():
        pending = overdue["byConsumer"].get(name, 0)
        if stats["count"]:
            click.echo(
                f"  {name}: {pending} overdue; time to revoke over {window}: n={stats['count']} "
                f"p50 {stats['p50']}s p90 {stats['p90']}s p99 {stats['p99']}s max {stats['max']}s"
            )
        else:
            click.echo(f"  {name}: {pending} overdue; nothing acknowledged in {window}")
