"""The engine for a database URL, built by the implementation of the kind the URL names.

The URL is read by storage/urls.py; the kind's package builds the engine with its driver and the
settings every connection gets (storage/sqlite/engine.py, storage/postgres/engine.py). The names
of storage/urls.py are re-exported here for the callers that configure a database.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.json_columns import json_text
from provisor.storage.kind import backend_named
from provisor.storage.urls import (
    DEFAULT_DATABASE_URL,
    DatabaseUrlError,
    backend_name,
    behind_pgbouncer,
    pgbouncer_url,
    redacted,
    sqlite_path,
    without_pgbouncer_param,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DatabaseUrlError",
    "backend_name",
    "behind_pgbouncer",
    "create_engine",
    "json_text",
    "pgbouncer_url",
    "redacted",
    "sqlite_path",
    "without_pgbouncer_param",
]


#: PostgreSQL connections one engine (one worker) keeps in its pool; it may open half as many more
#: for a burst (`PROVISOR_DATABASE_POOL_SIZE`, docs/scale-out.md).
DEFAULT_POOL_SIZE = 20


def create_engine(url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:
    """An AsyncEngine for `url` (DatabaseUrlError for a URL that names no supported database)."""
    implementation = backend_named(backend_name(url))
    if implementation is None:  # parse_url refuses these already; kept for the type checker
        raise DatabaseUrlError(f"unsupported database in {redacted(url)}")
    return implementation.engines.create_engine(url, pool_size=pool_size)
