"""`provisor roles map|unmap|list|jobs`: which groups grant which application roles (docs/roles.md)."""

from __future__ import annotations

from typing import Any

import click
import orjson

from provisor.cli.common import database_option, require_tenant, run_existing, run_migrated
from provisor.cli.errors import UnknownValue
from provisor.errors import ScimError
from provisor.service import roles as service
from provisor.storage.roles import Mapping, RoleJob
from provisor.storage.transactions import read_transaction

_tenant = click.option("--tenant", required=True, help="The tenant whose mappings to use.")
_group = click.option(
    "--group", required=True, help="A group id, or a group displayName (survives re-creation)."
)
_role = click.option("--role", required=True, help="The application role the group grants.")


@click.group("roles")
def roles() -> None:
    """Application roles granted by group membership (docs/roles.md)."""


async def _checked(engine: Any, tenant: str) -> None:
    async with read_transaction(engine) as conn:
        await require_tenant(conn, tenant)


def _change(database_url: str, tenant: str, group: str, role: str, *, add: bool) -> service.MapResult:
    async def work(engine: Any) -> service.MapResult:
        await _checked(engine, tenant)
        return await service.change_mapping(engine, tenant, group, role, add=add)

    try:
        return run_migrated(database_url, work)
    except ScimError as error:
        raise UnknownValue(error.detail) from None


def _describe(mapping: Mapping) -> str:
    by = "group" if mapping.kind == "id" else "groups named"
    return f"{by} {mapping.group_ref} -> role {mapping.role}"


def _jobs_line(jobs: list[RoleJob]) -> str:
    running = [j for j in jobs if j.state == "running"]
    if not running:
        return ""
    return (
        f"; {len(running)} background job(s) running, see `provisor roles jobs --tenant {jobs[0].tenant_id}`"
    )


@roles.command("map")
@_tenant
@_group
@_role
@database_option
def map_command(tenant: str, group: str, role: str, database_url: str) -> None:
    """Grant ROLE to the members of GROUP (events for large groups follow in the background)."""
    result = _change(database_url, tenant, group, role, add=True)
    verb = "mapped" if result.changed else "already mapped:"
    click.echo(f"{verb} {_describe(result.mapping)}{_jobs_line(result.jobs)}")


@roles.command("unmap")
@_tenant
@_group
@_role
@database_option
def unmap_command(tenant: str, group: str, role: str, database_url: str) -> None:
    """Stop granting ROLE through GROUP (members keep it only through other groups)."""
    result = _change(database_url, tenant, group, role, add=False)
    if not result.changed:
        raise UnknownValue(
            f"no mapping of group {group} to role {role} in tenant {tenant}",
            f"see `provisor roles list --tenant {tenant}`",
        )
    click.echo(f"unmapped {_describe(result.mapping)}{_jobs_line(result.jobs)}")


@roles.command("list")
@_tenant
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@database_option
def list_command(tenant: str, as_json: bool, database_url: str) -> None:
    """The tenant's mappings: role, how the group is named (id or displayName), the group."""

    async def work(engine: Any) -> list[Mapping]:
        await _checked(engine, tenant)
        return await service.mappings(engine, tenant)

    for mapping in run_existing(database_url, work):
        if as_json:
            click.echo(orjson.dumps(service.mapping_json(mapping)).decode())
        else:
            shown = service.mapping_json(mapping)
            click.echo(f"{mapping.role}\t{shown['by']}\t{mapping.group_ref}")


@roles.command("jobs")
@_tenant
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@database_option
def jobs_command(tenant: str, as_json: bool, database_url: str) -> None:
    """Background map/unmap jobs and their progress (processed/total members)."""

    async def work(engine: Any) -> list[RoleJob]:
        await _checked(engine, tenant)
        return await service.jobs(engine, tenant)

    for job in run_existing(database_url, work):
        if as_json:
            click.echo(orjson.dumps(service.job_json(job)).decode())
        else:
            click.echo(
                f"{job.id}\t{job.action}\t{job.role}\t{job.group_id}\t{job.state}\t{job.processed}/{job.total}"
            )
