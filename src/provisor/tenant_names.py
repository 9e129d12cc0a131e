"""The one rule for tenant names, shared by the CLI, the admin API and storage.

A tenant name appears in URLs, log lines and shell commands, so it is kept to characters that need
no quoting anywhere: 1-63 lowercase letters, digits, `.`, `_` and `-`, starting with a letter or
digit (like a DNS label, plus `.` and `_`). Lowercase only, so that `Acme` and `acme` can never
be two tenants.
"""

from __future__ import annotations

import re

TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
RULE = "1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"


class InvalidTenantName(ValueError):
    """A tenant name outside the rule."""


def check_tenant_name(name: str) -> str:
    """`name` if it follows the rule, else InvalidTenantName saying why."""
    if not TENANT_NAME.fullmatch(name):
        raise InvalidTenantName(f"invalid tenant name {name!r}: use {RULE}")
    return name
