"""Query parameters of the admin API that name something: validated, never matched against nothing.

A typo in `?tenant=` or `?type=` used to return an empty page, which reads as "no events". Each
parameter here either names something that exists or is a 400 `invalidValue` saying what is known.
"""

from __future__ import annotations

from starlette.requests import Request

from provisor.config import parse_bool
from provisor.errors import invalid_value
from provisor.events.model import parse_ops, parse_resource_type
from provisor.service import tenants
from provisor.service.database import Database
from provisor.tenant_names import InvalidTenantName, check_tenant_name


async def tenant_param(request: Request, engine: Database) -> str | None:
    """`?tenant=`: None when absent; 400 for a malformed name or a tenant that does not exist."""
    name = request.query_params.get("tenant")
    if not name:
        return None
    try:
        check_tenant_name(name)
    except InvalidTenantName as exc:
        raise invalid_value(str(exc)) from None
    if not await tenants.exists(engine, name):
        raise invalid_value(f"no tenant {name}")
    return name


def type_param(request: Request) -> str | None:
    """`?type=`: `User` or `Group` (`Users` / `Groups` and any case accepted)."""
    raw = request.query_params.get("type")
    if not raw:
        return None
    try:
        return parse_resource_type(raw)
    except ValueError as exc:
        raise invalid_value(str(exc)) from None


def ops_param(request: Request) -> frozenset[str] | None:
    """`?op=created,deleted`: known ops only."""
    try:
        ops = parse_ops(request.query_params.get("op", ""))
    except ValueError as exc:
        raise invalid_value(str(exc)) from None
    return frozenset(ops) if ops else None


def flag_param(request: Request, name: str) -> bool:
    """A boolean parameter, spelled as the environment's booleans are (true/false, 1/0, yes/no, on/off)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return False
    try:
        return parse_bool(raw)
    except ValueError:
        raise invalid_value(f"{name} must be true or false") from None
