"""`provisor token rotate ID [--overlap 7d]` (the logic is service/token_rotation.py)."""

from __future__ import annotations

from typing import Any

import click

from provisor.cli.common import database_option, parse_duration, run_migrated
from provisor.service.token_rotation import DEFAULT_OVERLAP, Rotation, RotationError, rotate_token


@click.command("rotate")
@click.argument("token_id")
@click.option(
    "--overlap",
    default="7d",
    show_default=True,
    help="How long the old token keeps working, e.g. 7d, 12h, 0s.",
)
@database_option
def token_rotate(token_id: str, overlap: str, database_url: str) -> None:
    """Mint a new token for the same tenant; the old one expires after the overlap.
    The new secret is printed once, alone on the last line."""
    period = parse_duration(overlap) if overlap else DEFAULT_OVERLAP

    async def work(engine: Any) -> Rotation:
        return await rotate_token(engine, token_id, period)

    try:
        rotation = run_migrated(database_url, work)
    except RotationError as exc:
        raise click.ClickException(f"{exc}; see `provisor token list` for the ids") from None
    click.echo(
        f"rotated {rotation.old.id}: new {rotation.new.kind} token {rotation.new.id} for tenant "
        f"{rotation.new.tenant_id or '-'}; the old one expires {rotation.old_expires_at} "
        f"(last used {rotation.old.last_used or 'never'})",
        err=True,
    )
    click.echo(rotation.secret)
