"""Refuse obviously unsafe database set-ups at `provisor serve` (docs/security.md).

A PostgreSQL URL with no password that points at another machine usually means `trust`
authentication over the network: anyone who can reach the port owns every tenant's data.
"""

from __future__ import annotations

import ipaddress
import os

from sqlalchemy.engine import make_url

from provisor.storage.kind import backend_named
from provisor.storage.urls import backend_name

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str | None) -> bool:
    if not host or host.startswith("/"):
        return True  # no host: a Unix socket on this machine
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def insecure_database_reason(url: str) -> str | None:
    """Why `url` is unsafe to serve from, or None."""
    kind = backend_named(backend_name(url))
    if kind is None or not kind.network_server:
        return None
    parsed = make_url(url)
    has_credential = bool(parsed.password) or "sslcert" in parsed.query or bool(os.environ.get("PGPASSWORD"))
    query_host = parsed.query.get("host")
    host = parsed.host or (query_host if isinstance(query_host, str) else None)
    if has_credential or is_loopback(host):
        return None
    return (
        f"the PostgreSQL URL has no password and its host {host!r} is not this machine; "
        "add a password (or PGPASSWORD, or a client certificate), "
        "or pass --allow-insecure-database / PROVISOR_ALLOW_INSECURE_DATABASE=1"
    )
