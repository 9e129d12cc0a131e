"""What every `provisor` subcommand module shares: the database flag and the migrate-then-run helper.

Kept apart from `provisor.cli` because that module imports the subcommand modules to register them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from provisor.storage.engine import DEFAULT_DATABASE_URL, async_url, create_engine, pgbouncer_url
from provisor.storage.migrate import upgrade

T = TypeVar("T")


def _checked_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """A URL the engine cannot use is bad usage (exit 2, one line), not a traceback later."""
    try:
        async_url(value)
        pgbouncer_url(value)
    except Exception as exc:
        raise click.BadParameter(str(exc)) from None
    return value


database_option = click.option(
    "--database-url",
    envvar="PROVISOR_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    callback=_checked_url,
    help="sqlite:///path.db or postgresql://user@host:port/db[?pgbouncer=true]",
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
