"""Database URLs: which database a URL names, its file, its PgBouncer flag, and its redaction.

Users configure plain URLs (`sqlite:///./provisor.db`, `postgresql://user@host/db`). Everything
here reads the URL only, before there is an engine: `storage/engine.py` then builds the engine
with the implementation of the kind the URL names (`storage/kind.py`), and the per-database
packages read their own parts of the URL here (a SQLite file, PgBouncer's flag) without importing
the engine factory that imports them.

`postgresql://...?pgbouncer=true` says the URL reaches PostgreSQL through PgBouncer in transaction
mode (docs/scale-out.md); storage/postgres/engine.py says what that changes.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_DATABASE_URL = "sqlite:///./provisor.db"


#: The URL query parameter that marks a PgBouncer (transaction mode) in front of PostgreSQL.
PGBOUNCER_PARAM = "pgbouncer"
#: The engine execution option that carries it (`behind_pgbouncer`).
PGBOUNCER_OPTION = "provisor_pgbouncer"
#: Startup parameters PgBouncer 1.18 passes on; it refuses a connection that sends any other.
PGBOUNCER_STARTUP_PARAMETERS = frozenset(
    {"application_name", "client_encoding", "datestyle", "timezone", "standard_conforming_strings"}
)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def pgbouncer_url(url: str | URL) -> bool:
    """Whether `url` carries `pgbouncer=true` (any other value than true/false is a ValueError)."""
    value = (make_url(url) if isinstance(url, str) else url).query.get(PGBOUNCER_PARAM)
    if value is None:
        return False
    text = (value[-1] if isinstance(value, tuple) else value).lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise DatabaseUrlError(
        f"{PGBOUNCER_PARAM}={text!r} in the database URL: use {PGBOUNCER_PARAM}=true or false"
    )


def behind_pgbouncer(engine: AsyncEngine) -> bool:
    """Whether `engine` was created from a `pgbouncer=true` URL."""
    return bool(engine.get_execution_options().get(PGBOUNCER_OPTION, False))


def without_pgbouncer_param(url: str) -> str:
    """`url` as libpq and the drivers accept it (they refuse unknown query parameters)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # parse_url names the problem
    if PGBOUNCER_PARAM not in parsed.query:
        return url
    return parsed.difference_update_query([PGBOUNCER_PARAM]).render_as_string(hide_password=False)


class DatabaseUrlError(ValueError):
    """A database URL that cannot be parsed or names a database Provisor does not support."""


def parse_url(url: str) -> URL:
    """The parsed URL of a supported database (SQLite or PostgreSQL), else DatabaseUrlError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError(f"cannot parse the database URL {url!r}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
        raise DatabaseUrlError(
            f"unsupported database {parsed.get_backend_name()!r} in the URL: "
            "Provisor runs on SQLite and PostgreSQL"
        )
    return parsed


def redacted(url: str) -> str:
    """`url` with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def backend_name(url: str) -> str:
    """The kind of database a URL names (`storage/kind.py` `backend_named`): sqlite or postgresql."""
    name = parse_url(url).get_backend_name()
    return "postgresql" if name == "postgres" else name


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (None for PostgreSQL and for in-memory databases)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if str(parsed.query.get("uri", "")).lower() in ("true", "1") and parsed.database.startswith("file:"):
        path = parsed.database[len("file:") :].partition("?")[0]  # sqlite:///file:PATH?mode=ro&uri=true
        return None if path in ("", ":memory:") else path
    return parsed.database
