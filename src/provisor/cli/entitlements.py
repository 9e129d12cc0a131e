"""`provisor entitlements define|remove|list`: the catalogue an IdP lists under /Entitlements and /Roles.

See docs/entitlements.md. The catalogue is the application's data: Okta reads it, never writes it.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from provisor.cli.common import database_option, run_existing, run_migrated
from provisor.cli.errors import UnknownValue
from provisor.errors import ScimError
from provisor.schema.registry import CATALOGUE_TYPES
from provisor.service.entitlements import CatalogueService, entry_json
from provisor.storage.entitlements import CatalogueEntry

_TYPE = click.Choice(CATALOGUE_TYPES, case_sensitive=False)


def _catalogue(engine: Any) -> CatalogueService:
    from provisor.schema.registry import default_registry

    return CatalogueService(engine, default_registry())


def _canonical(kind: str) -> str:
    return next(name for name in CATALOGUE_TYPES if name.lower() == kind.lower())


@click.group("entitlements")
def entitlements() -> None:
    """The entitlements and roles a tenant's IdP may assign (docs/entitlements.md)."""


@entitlements.command("define")
@click.option("--tenant", required=True, help="The tenant whose catalogue to change.")
@click.option(
    "--type", "kind", required=True, type=_TYPE, help="Entitlement (/Entitlements) or Role (/Roles)."
)
@click.argument("entry_id", metavar="ID")
@click.option("--display-name", required=True, help="The name administrators see in the IdP.")
@click.option(
    "--entitlement-type", default=None, help="The entry's `type` attribute, e.g. License or Profile."
)
@click.option("--description", default=None, help="What the entry grants.")
@database_option
def define(
    tenant: str,
    kind: str,
    entry_id: str,
    display_name: str,
    entitlement_type: str | None,
    description: str | None,
    database_url: str,
) -> None:
    """Define (or replace) one entitlement or role of a tenant's catalogue."""

    async def work(engine: Any) -> tuple[CatalogueEntry, bool]:
        return await _catalogue(engine).define(
            tenant, _canonical(kind), entry_id, display_name, entitlement_type, description
        )

    try:
        entry, created = run_migrated(database_url, work)
    except ScimError as error:
        if error.status == 404:
            raise UnknownValue(
                f"no tenant {tenant}; create it with `provisor tenant create {tenant}`"
            ) from None
        raise UnknownValue(error.detail) from None
    verb = "defined" if created else "updated"
    click.echo(f"{verb} {entry.resource_type} {entry.id} ({entry.display_name})")


@entitlements.command("remove")
@click.option("--tenant", required=True)
@click.option("--type", "kind", required=True, type=_TYPE)
@click.argument("entry_id", metavar="ID")
@database_option
def remove(tenant: str, kind: str, entry_id: str, database_url: str) -> None:
    """Remove one entry from the catalogue (users keep values already assigned)."""

    async def work(engine: Any) -> bool:
        return await _catalogue(engine).remove(tenant, _canonical(kind), entry_id)

    if not run_migrated(database_url, work):
        raise UnknownValue(
            f"no {_canonical(kind)} {entry_id} in tenant {tenant}; "
            f"see `provisor entitlements list --tenant {tenant}`"
        )
    click.echo(f"removed {_canonical(kind)} {entry_id}")


@entitlements.command("list")
@click.option("--tenant", required=True)
@click.option("--type", "kind", default=None, type=_TYPE, help="Only entitlements or only roles.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@database_option
def list_entries(tenant: str, kind: str | None, as_json: bool, database_url: str) -> None:
    """List the catalogue: type, id, display name and the entry's own `type`."""
    types = (_canonical(kind),) if kind else CATALOGUE_TYPES

    async def work(engine: Any) -> list[CatalogueEntry]:
        return await _catalogue(engine).entries(tenant, types)

    try:
        found = run_existing(database_url, work)
    except ScimError:
        raise UnknownValue(f"no tenant {tenant}; see `provisor tenant list`") from None
    for entry in found:
        if as_json:
            click.echo(orjson.dumps(entry_json(entry)).decode())
        else:
            fields = (entry.resource_type, entry.id, entry.display_name, entry.type or "")
            click.echo("\t".join(fields).rstrip("\t"))
