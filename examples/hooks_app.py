"""A host application that keeps its own `accounts` table in sync through Provisor's Python hooks.

Run it (from the repository root, with Provisor installed, e.g. in `.venv`)::

    export PROVISOR_DATABASE_URL=sqlite:///./provisor.db      # Provisor's own tables
    export ACCOUNTS_DATABASE_URL=sqlite:///./accounts.db       # this app's table (default shown)
    provisor token create --name idp --database-url "$PROVISOR_DATABASE_URL"   # bearer for the IdP
    python examples/hooks_app.py                               # uvicorn on 127.0.0.1:8000 (PORT=...)

Provisor is mounted at `/`, so the URLs are:

- `http://127.0.0.1:8000/scim/v2`   the SCIM base URL to give the identity provider
  (plus Provisor's `/healthz`, `/readyz` and `/admin/v1/...`)
- `http://127.0.0.1:8000/accounts`  this app's own route: its `accounts` table as JSON

`ACCOUNTS_DATABASE_URL` may be the same URL as `PROVISOR_DATABASE_URL` (`sqlite:///...` or
`postgresql://user@host/db`): the app only creates and touches its `accounts` table.

Why hooks: Provisor runs in this process, so a hook is a plain function call, with no HTTP
endpoint, secret or retry queue to operate. Hooks run *after commit* (a change the IdP saw fail
never reaches them), *in order*, from a background task, so a slow hook never delays the IdP.
`deactivated` sets `active = false` here at once: the app locks the account out as soon as the IdP
does. The trade-offs (docs/events.md): a hook that raises is logged, not retried, and events
committed while no process runs are not replayed; every worker process calls the hooks, which is
why each one is an idempotent upsert or delete. When you need a durable cursor, use the change
feed or a webhook (see examples/webhook_receiver.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Boolean, Column, MetaData, String, Table, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

import provisor
from provisor.config import Settings
from provisor.events import Event

metadata = MetaData()

#: The host application's own table: one row per SCIM User, keyed by tenant and SCIM id (ids are unique
#: only within a tenant: `provisor export` / `import` copy a user into another tenant with the same id).
accounts = Table(
    "accounts",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("scim_id", String(64), primary_key=True),
    Column("user_name", String(256), nullable=False),
    Column("email", String(320), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("updated_at", String(40), nullable=False),  # the event's `at` (ISO 8601, UTC)
)


def accounts_engine(url: str) -> AsyncEngine:
    """An async engine for a plain `sqlite:///...` or `postgresql://...` URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed.set(drivername="sqlite+aiosqlite"))

        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")  # share the file with Provisor if asked to
            cursor.close()

        event.listen(engine.sync_engine, "connect", _pragmas)
        return engine
    return create_async_engine(parsed.set(drivername="postgresql+asyncpg"))


def primary_email(user: dict[str, Any]) -> str | None:
    """The primary email address, else the first one, else None."""
    emails = [e for e in user.get("emails") or [] if isinstance(e, dict) and e.get("value")]
    for entry in emails:
        if entry.get("primary"):
            return str(entry["value"])
    return str(emails[0]["value"]) if emails else None


async def upsert_account(conn: AsyncConnection, event: Event) -> None:
    """Insert or update the account from the User in the event's payload (the User after the change)."""
    user = event.payload or {}
    if "userName" not in user:  # not expected for User events; never write a half-empty row
        return
    row = {
        "tenant": event.tenant,
        "scim_id": event.resource_id,
        "user_name": user["userName"],
        "email": primary_email(user),
        "active": bool(user.get("active", True)),
        "updated_at": event.at,
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(accounts).values(**row)
    key = ["tenant", "scim_id"]
    changes = {name: statement.excluded[name] for name in row if name not in key}
    await conn.execute(statement.on_conflict_do_update(index_elements=key, set_=changes))


async def remove_account(conn: AsyncConnection, event: Event) -> None:
    mine = (accounts.c.tenant == event.tenant) & (accounts.c.scim_id == event.resource_id)
    await conn.execute(delete(accounts).where(mine))


class AccountSync:
    """Provisor hooks (`on_<type>_<op>`); each runs after Provisor's commit, in event order."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _upsert(self, event: Event) -> None:
        async with self.engine.begin() as conn:
            await upsert_account(conn, event)

    async def on_user_created(self, event: Event) -> None:
        await self._upsert(event)

    async def on_user_updated(self, event: Event) -> None:
        await self._upsert(event)

    async def on_user_activated(self, event: Event) -> None:
        await self._upsert(event)

    async def on_user_deactivated(self, event: Event) -> None:
        # The payload has `active: false`: the account is locked out from this commit on.
        await self._upsert(event)

    async def on_user_deleted(self, event: Event) -> None:
        async with self.engine.begin() as conn:
            await remove_account(conn, event)


def create_host_app(settings: Settings | None = None, accounts_url: str | None = None) -> Starlette:
    """The host app: `GET /accounts`, and Provisor (with the hooks) mounted at `/`."""
    settings = settings or Settings.from_env()
    url = accounts_url or os.environ.get("ACCOUNTS_DATABASE_URL", "sqlite:///./accounts.db")
    engine = accounts_engine(url)
    scim_app = provisor.create_app(settings, hooks=AccountSync(engine))

    async def list_accounts(request: Request) -> Response:
        async with engine.connect() as conn:
            query = select(accounts).order_by(accounts.c.tenant, accounts.c.user_name)
            rows = (await conn.execute(query)).mappings()
            return JSONResponse({"accounts": [dict(row) for row in rows]})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)  # the table must exist before the first hook
        # Starlette does not run a mounted app's lifespan: enter Provisor's here. It migrates its
        # database and starts the hook runner (and, unless disabled, the webhook worker).
        async with scim_app.router.lifespan_context(scim_app):
            yield
        await engine.dispose()

    return Starlette(
        routes=[
            Route("/accounts", list_accounts),  # listed before the mount, so it wins
            Mount("/", app=scim_app),  # /scim/v2/..., /healthz, /readyz, /admin/v1/...
        ],
        lifespan=lifespan,
    )


def main() -> None:
    import uvicorn

    app = create_host_app()
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))


if __name__ == "__main__":
    main()
