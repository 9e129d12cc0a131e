"""What every `provisor` subcommand module shares: the database flag, the migrate-then-run helper and
duration parsing.

Kept apart from `provisor.cli` (the package) because that imports the subcommand modules to register them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from provisor import durations
from provisor.cli.errors import CliError, NoDatabase, UnknownValue
from provisor.service.database import prepare
from provisor.storage.engine import DEFAULT_DATABASE_URL, create_engine, redacted, sqlite_path
from provisor.storage.handles import AsyncConnection
from provisor.storage.migrate import code_revisions, current_revisions
from provisor.storage.tenants import ensure_tenant, tenant_exists
from provisor.tenant_names import check_tenant_name

T = TypeVar("T")

database_option = click.option(
    "--database-url",
    envvar="PROVISOR_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="sqlite:///path.db or postgresql://user@host:port/db",
)


def run_migrated(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Migrate (creating the database and the default tenant if need be), then run `work(engine)`.

    For commands that write: `provisor tenant create acme` works against a fresh database too.
    """

    path = sqlite_path(url)
    if path is not None and not Path(path).parent.is_dir():
        raise CliError(
            f"cannot create the SQLite database {path}: the folder {Path(path).parent} does not exist",
            "create the folder, or fix the path in --database-url / PROVISOR_DATABASE_URL",
        )

    async def main() -> T:
        engine = create_engine(url)
        try:
            await prepare(engine, migrate=True)
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _no_database(url: str) -> NoDatabase:
    return NoDatabase(
        f"there is no Provisor database at {redacted(url)}",
        f"create one with `provisor migrate --database-url '{redacted(url)}'` (or `make serve`), "
        "or point --database-url / PROVISOR_DATABASE_URL at the right one",
    )


def run_existing(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(engine)` against an existing, up-to-date Provisor database; never create or migrate one.

    For commands that only read: a wrong folder or URL must not leave an empty database behind
    (SQLite creates the file on connect, so the file is checked first).
    """
    path = sqlite_path(url)
    if path is not None and not Path(path).is_file():
        raise _no_database(url)

    async def main() -> T:
        engine = create_engine(url)
        try:
            current = await current_revisions(engine)
            if not current:
                raise _no_database(url)
            heads, _ = code_revisions()
            if current != heads:
                raise CliError(
                    f"the Provisor database at {redacted(url)} has an outdated schema (revision "
                    f"{', '.join(sorted(current))}, this version needs {', '.join(sorted(heads))})",
                    f"back it up, then run `provisor migrate --database-url '{redacted(url)}'`",
                )
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


create_tenant_option = click.option(
    "--create-tenant",
    is_flag=True,
    help="Create the tenant if it does not exist (otherwise an unknown tenant is an error).",
)


def unknown_tenant(name: str, *, creatable: bool = False) -> UnknownValue:
    """The error for a tenant that does not exist; `creatable` when the command has --create-tenant."""
    also = ", or pass --create-tenant" if creatable else ""
    return UnknownValue(f"no tenant {name}", f"create it with `provisor tenant create {name}`{also}")


async def require_tenant(
    conn: AsyncConnection, name: str, *, create: bool = False, creatable: bool = False
) -> bool:
    """Refuse an unknown tenant unless `create`; True when this call created it."""
    check_tenant_name(name)
    if await tenant_exists(conn, name):
        return False
    if not create:
        raise unknown_tenant(name, creatable=creatable)
    return await ensure_tenant(conn, name)


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `15m`, `90s` (provisor/durations.py), as a usage error when malformed."""
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
