"""What every `provisor` subcommand module shares: the database flag, the migrate-then-run helper and
duration parsing.

Kept apart from `provisor.cli` (the package) because that imports the subcommand modules to register them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from provisor.storage.engine import DEFAULT_DATABASE_URL, create_engine
from provisor.storage.migrate import upgrade

T = TypeVar("T")

database_option = click.option(
    "--database-url",
    envvar="PROVISOR_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="sqlite:///path.db or postgresql://user@host:port/db",
)


def run_migrated(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Migrate, then run `work(engine)`; CLI commands work against a fresh database too."""

    async def main() -> T:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `15m`, `90s`."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: use a number and a unit, e.g. 30d, 12h, 15m")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
