"""Engine construction for the two supported databases.

Users configure plain URLs (`sqlite:///./provisor.db`, `postgresql://user@host/db`); the async
driver is an implementation detail chosen here. SQLite gets WAL, foreign keys, a busy timeout, and
`scim_lower`, a Unicode-aware lower() so that case-insensitive comparisons agree with Python's.

`postgresql://...?pgbouncer=true` says the URL reaches PostgreSQL through PgBouncer in transaction
mode (docs/scale-out.md): consecutive transactions of one client connection may then run on
different server connections, so nothing may outlive a transaction on the server. That mode turns
off both statement caches (a named prepared statement exists on one server connection only);
asyncpg (>= 0.30) then sends every statement unnamed and parses it again in the same Sync cycle as
its Bind, which PgBouncer keeps on one server connection. It also sends no startup parameter that
PgBouncer 1.18 refuses (`jit`, `max_parallel_workers_per_gather`: set them with `ALTER DATABASE
... SET` instead, docs/scale-out.md).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

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


def async_url(url: str) -> str:
    """Map a user-facing URL to the async driver SQLAlchemy should use."""
    parsed = parse_url(without_pgbouncer_param(url))
    driver = "sqlite+aiosqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+asyncpg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def backend_name(url: str) -> str:
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


def scim_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Take over transaction control so that writers can BEGIN IMMEDIATE (see `_begin_sqlite`).
    dbapi_connection.isolation_level = None
    dbapi_connection.create_function("scim_lower", 1, scim_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_sqlite(conn: Any) -> None:
    """Writers take the write lock up front; a deferred BEGIN that upgrades later can deadlock
    against another process and fail at once with "database is locked" despite busy_timeout."""
    options = conn.get_execution_options()
    if options.get("provisor_autocommit", False):
        return
    busy = options.get("provisor_busy_ms")
    if busy is not None and conn.info.get("provisor_busy_ms", 30000) != busy:
        # A request's write waits for the lock at most what remains of its time (storage/transactions.py).
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy)}")
        conn.info["provisor_busy_ms"] = busy
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sqlite_immediate", False) else "BEGIN")


def json_text(value: Any) -> str:
    """JSON as the engines store it (also for rows that bypass SQLAlchemy's JSON type, e.g. COPY)."""
    return orjson.dumps(value).decode()


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def postgres_connect_args(url: str) -> dict[str, Any]:
    """asyncpg's `connect()` arguments for `url` (a `pgbouncer=true` URL gets no statement cache)."""
    # Short OLTP statements, many requests side by side: JIT compilation only adds latency, and a
    # parallel plan makes one request take several cores (a list page's count became a parallel
    # scan of the whole table once it had statistics: 16 concurrent lists fell from 39 to 6 per
    # second; docs/performance.md, "Parallel query"). `jit` first: PgBouncer names the first
    # startup parameter it refuses.
    settings = {"jit": "off", "max_parallel_workers_per_gather": "0"}
    args: dict[str, Any] = {}
    if pgbouncer_url(url):
        settings = {k: v for k, v in settings.items() if k in PGBOUNCER_STARTUP_PARAMETERS}
        args["statement_cache_size"] = 0
    args["server_settings"] = settings
    parsed = make_url(url)
    # asyncpg tries TLS first by default; on loopback that is a wasted round trip per connection.
    if (
        (parsed.host or "localhost") in LOOPBACK_HOSTS
        and "sslmode" not in parsed.query
        and "ssl" not in parsed.query
    ):
        args["ssl"] = False
    return args


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An AsyncEngine for `url` with per-dialect settings applied on every new connection."""
    backend = backend_name(url)
    json_options: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": orjson.loads}
    if backend == "sqlite":
        engine = create_async_engine(
            async_url(url), poolclass=NullPool if ":memory:" in url else None, **json_options
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_sqlite)
        return engine
    connect_args = postgres_connect_args(url)
    pgbouncer = pgbouncer_url(url)
    if pgbouncer:
        connect_args["prepared_statement_cache_size"] = 0  # SQLAlchemy's own, on top of asyncpg's
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size // 2,
        pool_pre_ping=False,
        connect_args=connect_args,
        execution_options={PGBOUNCER_OPTION: pgbouncer},
        **json_options,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has closed meanwhile (it restarted) is replaced at checkout
    instead of failing the request that gets it: asyncpg knows it locally, so unlike a pre-ping
    this costs no round trip."""
    driver = getattr(dbapi_connection, "driver_connection", None) or getattr(
        dbapi_connection, "_connection", None
    )
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this connection")
