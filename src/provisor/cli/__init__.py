"""The `provisor` command line (DESIGN.md section 1). Every flag has a `PROVISOR_*` env twin.

Each subcommand (or group of them) lives in its own module of this package and is registered in
`COMMANDS` below; `main` is the entry point named in pyproject.toml.
"""

from __future__ import annotations

import click

from provisor.cli.backup import backup_command, restore_command
from provisor.cli.bulk import export_command, import_command
from provisor.cli.consumers import consumers, deprovisioning
from provisor.cli.entitlements import entitlements
from provisor.cli.errors import ProvisorGroup, log_level_option
from provisor.cli.events import events, webhook
from provisor.cli.log import log_group
from provisor.cli.roles import roles
from provisor.cli.serve import migrate, serve
from provisor.cli.setup_link import setup_link
from provisor.cli.tenants import tenant
from provisor.cli.token_rotate import token_rotate
from provisor.cli.tokens import token


@click.group(cls=ProvisorGroup)
@click.version_option(package_name="provisor")
@log_level_option
def main() -> None:
    """Provisor: a SCIM 2.0 provisioning server."""


COMMANDS: tuple[click.Command, ...] = (
    serve,
    migrate,
    token,
    tenant,
    events,
    webhook,
    log_group,
    import_command,
    export_command,
    backup_command,
    restore_command,
    setup_link,
    consumers,
    deprovisioning,
    entitlements,
    roles,
)
for _command in COMMANDS:
    main.add_command(_command)
token.add_command(token_rotate)

if __name__ == "__main__":  # pragma: no cover
    main()
