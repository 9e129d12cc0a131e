"""`provisor backup FILE` and `provisor restore FILE`: see storage/backup.py for how each database
makes a consistent copy while writes go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from provisor.cli.common import database_option
from provisor.storage.backup import BackupError, backup, restore
from provisor.storage.engine import create_engine
from provisor.storage.migrate import upgrade


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@database_option
def backup_command(file: Path, database_url: str) -> None:
    """Write a consistent backup of the live database to FILE (writers keep going)."""
    try:
        result = backup(database_url, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"backed up the {result.kind} database to {result.path} ({result.size} bytes)")


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@database_option
@click.option("--force", is_flag=True, help="Replace a database that already holds Provisor data.")
def restore_command(file: Path, database_url: str, force: bool) -> None:
    """Restore FILE (made by `provisor backup`) into the database; stop the servers first."""
    try:
        kind = restore(file, database_url, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    asyncio.run(_migrate(database_url))
    click.echo(f"restored {file} into the {kind} database; restart the servers that use it")


async def _migrate(url: str) -> None:
    """A backup of an older release is brought to this release's schema."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
