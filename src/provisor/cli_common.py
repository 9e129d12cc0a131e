"""What every `provisor` subcommand module shares: the database flag and the migrate-then-run helper.

Kept apart from `provisor.cli` because that module imports the subcommand modules to register them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
