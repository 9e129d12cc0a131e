"""`provisor import` and `provisor export`: move a directory in and out as JSON Lines (or CSV in)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from provisor.cli.common import create_tenant_option, database_option, require_tenant, unknown_tenant
from provisor.config import Settings
from provisor.schema.registry import default_registry
from provisor.service.context import RequestContext
from provisor.service.groups import GroupService
from provisor.service.resources import ResourceService
from provisor.service.sources import (
    Item,
    Record,
    parse_mapping,
    read_csv_records,
    read_json_records,
    resource_type_of,
)
from provisor.service.transfer import ORDER, Importer, ImportReport, export_resources
from provisor.service.users import UserService
from provisor.storage.auth_cache import auth_write
from provisor.storage.tenants import (
    DEFAULT_TENANT,
    count_resources,
    delete_tenant,
    get_settings,
    tenant_exists,
)
from provisor.storage.transactions import read_transaction, write_transaction
from provisor.tenant_names import check_tenant_name

TYPES = click.Choice(["Users", "Groups"], case_sensitive=False)
tenant_option = click.option("--tenant", envvar="PROVISOR_TENANT", default=DEFAULT_TENANT, show_default=True)


def _services(engine: Any, settings: Settings) -> dict[str, ResourceService]:
    registry = default_registry(settings.schema_extensions)
    return {
        "User": UserService(engine, registry, registry.resource_type("User"), settings),
        "Group": GroupService(engine, registry, registry.resource_type("Group"), settings),
    }


async def _context(
    engine: Any, tenant: str, settings: Settings, actor: str, *, create: bool = False
) -> tuple[RequestContext, bool]:
    """The tenant's request context; an unknown tenant is refused unless `create` (True: created)."""
    async with write_transaction(engine) as conn:
        created = await require_tenant(conn, tenant, create=create, creatable=actor == "import")
        tenant_settings = await get_settings(conn, tenant)
    return RequestContext(tenant, actor, (settings.base_url or "").rstrip("/"), tenant_settings), created


async def _known_or_creatable(engine: Any, tenant: str, create: bool) -> bool:
    """Whether the tenant exists; an unknown one is an error unless --create-tenant (then False)."""
    async with read_transaction(engine) as conn:
        check_tenant_name(tenant)
        if await tenant_exists(conn, tenant):
            return True
    if not create:
        raise unknown_tenant(tenant, creatable=True)
    return False


async def _drop_if_empty(engine: Any, tenant: str) -> None:
    """Undo a tenant this import created when nothing was written into it (a refused --strict)."""
    async with auth_write(engine) as conn:  # workers cache tenants with tokens
        if await count_resources(conn, tenant) == 0:
            await delete_tenant(conn, tenant)


def _singular(kind: str | None) -> str | None:
    return None if kind is None else ("User" if kind.lower() == "users" else "Group")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@tenant_option
@click.option("--type", "kind", type=TYPES, default=None, help="Resource type (default: from each record).")
@create_tenant_option
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--strict", is_flag=True, help="Refuse the whole file if any line is bad.")
@click.option("--csv", "is_csv", is_flag=True, help="FILE is CSV with a header row; needs --map.")
@click.option("--map", "mapping", default=None, help="CSV mapping, e.g. userName=email,name.givenName=first")
@database_option
def import_command(
    file: Path,
    tenant: str,
    kind: str | None,
    create_tenant: bool,
    dry_run: bool,
    strict: bool,
    is_csv: bool,
    mapping: str | None,
    database_url: str,
) -> None:
    """Create or update Users and Groups from JSON Lines, a ListResponse file, or CSV.

    Records match existing resources by id, externalId, then userName / displayName. Created
    accounts are unmanaged until an IdP adopts them with a POST of the same userName.
    """
    settings = Settings.from_env(database_url=database_url)
    singular = _singular(kind)
    if is_csv and not mapping:
        raise click.UsageError("--csv needs --map attribute=column,...")
    console = Console(stderr=True)

    async def work(engine: Any) -> ImportReport:
        services = _services(engine, settings)
        if dry_run and not await _known_or_creatable(engine, tenant, create_tenant):
            # Nothing is written on a dry run, not even the tenant: check against an empty one.
            created = False
            ctx = RequestContext(tenant, "import", (settings.base_url or "").rstrip("/"), {})
        else:
            ctx, created = await _context(engine, tenant, settings, "import", create=create_tenant)
        if is_csv:
            rt = services[singular or "User"].rt
            try:
                items: list[Item] = list(
                    read_csv_records(file, parse_mapping(mapping or ""), services["User"].registry, rt)
                )
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
        else:
            items = list(read_json_records(file))

        def type_of(record: Record) -> str:
            return singular or resource_type_of(record.doc, "User")

        total = sum(1 for i in items if isinstance(i, Record))
        with _progress(console) as bar:
            task = bar.add_task("checking" if dry_run else "importing", total=total, rate="")

            def advance(n: int) -> None:
                bar.advance(task, n)
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{speed:,.0f}/s" if speed else "")

            report = await Importer(services, ctx).run(
                items, type_of, dry_run=dry_run, strict=strict, progress=advance
            )
        if created and not (report.created or report.updated):
            await _drop_if_empty(engine, tenant)
        return report

    from provisor.cli.common import run_migrated

    report = run_migrated(database_url, work)
    for bad in report.bad:
        console.print(f"[red]line {bad.line}[/red]: {bad.reason}", highlight=False)
    verb = "would be" if dry_run else "were"
    if strict and report.bad and not (report.created or report.updated):
        console.print(f"refused: {len(report.bad)} bad line(s) and --strict; nothing was written")
        sys.exit(1)
    console.print(
        f"{report.created} {verb} created, {report.updated} {verb} updated, {report.unchanged} unchanged, "
        f"{len(report.bad)} bad line(s)"
    )
    if report.bad:
        sys.exit(1 if strict else 2)


@click.command("export")
@tenant_option
@click.option("--type", "kind", type=TYPES, default=None, help="Only this resource type (default: both).")
@database_option
def export_command(tenant: str, kind: str | None, database_url: str) -> None:
    """Write JSON Lines to stdout: Users first, then Groups (members by id); `import` takes it back."""
    settings = Settings.from_env(database_url=database_url)
    singular = _singular(kind)
    out = sys.stdout.buffer

    async def work(engine: Any) -> int:
        services = _services(engine, settings)
        ctx, _ = await _context(engine, tenant, settings, "export")
        written = 0
        for name in ORDER:
            if singular is not None and name != singular:
                continue
            async for doc in export_resources(services[name], ctx):
                out.write(orjson.dumps(doc) + b"\n")
                written += 1
        out.flush()
        return written

    from provisor.cli.common import run_existing

    count = run_existing(database_url, work)
    click.echo(f"exported {count} resource(s) from tenant {tenant}", err=True)
