"""PostgreSQL's engine (`storage.contracts.EngineFactory`): asyncpg, a pool, and the session
settings every connection starts with.

`pgbouncer=true` in the URL (storage/urls.py) says the URL reaches PostgreSQL through PgBouncer in
transaction mode (docs/scale-out.md): consecutive transactions of one client connection may then
run on different server connections, so nothing may outlive a transaction on the server. That mode
turns off both statement caches (a named prepared statement exists on one server connection only);
asyncpg (>= 0.30) then sends every statement unnamed and parses it again in the same Sync cycle as
its Bind, which PgBouncer keeps on one server connection. It also sends no startup parameter that
PgBouncer 1.18 refuses (`jit`, `max_parallel_workers_per_gather`: set them with `ALTER DATABASE
... SET` instead, docs/scale-out.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from provisor.storage.json_columns import ENGINE_JSON
from provisor.storage.urls import (
    PGBOUNCER_OPTION,
    PGBOUNCER_STARTUP_PARAMETERS,
    parse_url,
    pgbouncer_url,
    without_pgbouncer_param,
)

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


def create_engine(url: str, *, pool_size: int) -> AsyncEngine:
    """An engine for a `postgresql://` URL, with `pool_size` connections and half as many more."""
    driver_url = (
        parse_url(without_pgbouncer_param(url))
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )
    connect_args = postgres_connect_args(url)
    pgbouncer = pgbouncer_url(url)
    if pgbouncer:
        connect_args["prepared_statement_cache_size"] = 0  # SQLAlchemy's own, on top of asyncpg's
    engine = create_async_engine(
        driver_url,
        pool_size=pool_size,
        max_overflow=pool_size // 2,
        pool_pre_ping=False,
        connect_args=connect_args,
        execution_options={PGBOUNCER_OPTION: pgbouncer},
        **ENGINE_JSON,
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
