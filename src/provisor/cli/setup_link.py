"""`provisor setup-link create|list|revoke`: links to a tenant's IT-admin setup page
(docs/setup-link.md)."""

from __future__ import annotations

from typing import Any

import click

from provisor.cli.common import database_option, run_existing, run_migrated
from provisor.service import setup_links

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(code)


@click.group("setup-link")
def setup_link() -> None:
    """Create, list and revoke setup links for customers' IT admins."""


@setup_link.command("create")
@click.option("--tenant", required=True, help="The tenant the link sets up (must exist).")
@click.option("--expires-in", default="7d", show_default=True, help="Lifetime: 7d, 12h, 30m (at most 90d).")
@click.option(
    "--base-url",
    envvar="PROVISOR_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="The server's public URL (a trailing /scim/v2 is dropped).",
)
@database_option
def create(tenant: str, expires_in: str, base_url: str, database_url: str) -> None:
    """Make a link; its URL is printed alone on the last line (the secret is shown only here)."""
    try:
        lifetime = setup_links.parse_lifetime(expires_in)
    except setup_links.BadLifetime as exc:
        raise click.BadParameter(str(exc), param_hint="--expires-in") from None

    async def work(engine: Any) -> setup_links.CreatedLink | None:
        try:
            return await setup_links.create(engine, tenant, base_url, lifetime)
        except setup_links.UnknownTenant:
            return None

    made = run_migrated(database_url, work)
    if made is None:
        _fail(f"no tenant {tenant}; create it with `provisor tenant create {tenant}`", 2)
        return
    link = made.link
    click.echo(f"created setup link {link.id} for tenant {tenant}, expires {link.expires_at}", err=True)
    click.echo(made.url)


@setup_link.command("list")
@click.option("--tenant", default=None, help="Only this tenant's links.")
@database_option
def list_(tenant: str | None, database_url: str) -> None:
    """List links (never their secrets), oldest first."""

    async def work(engine: Any) -> list[dict[str, Any]]:
        return [setup_links.describe(link) for link in await setup_links.list_links(engine, tenant)]

    for row in run_existing(database_url, work):
        click.echo(
            f"{row['id']}  {row['tenant']:12}  created {row['created']}  expires {row['expires']}  "
            f"last used {row['last_used'] or 'never'}  {row['state']}"
        )


@setup_link.command("revoke")
@click.argument("link_id")
@database_option
def revoke(link_id: str, database_url: str) -> None:
    """Revoke a link: its page answers 410 from now on (tokens it minted keep working)."""

    async def work(engine: Any) -> bool:
        return await setup_links.revoke(engine, link_id)

    if not run_migrated(database_url, work):
        _fail(f"no live setup link {link_id}; see `provisor setup-link list`", 2)
    click.echo(f"revoked setup link {link_id}")
