"""A separate application that keeps an `accounts` table in sync from Provisor's webhooks.

Run it from the repository with Provisor's virtualenv active (`. .venv/bin/activate`; Provisor itself
runs elsewhere with `provisor serve`)::

    export RECEIVER_DATABASE_URL=sqlite:///./receiver.db   # or postgresql://user@host/db
    export WEBHOOK_SECRET="$(python -c 'import secrets; print(secrets.token_hex(32))')"
    python examples/webhook_receiver.py                    # uvicorn on 127.0.0.1:8001 (PORT=...)

Register it with Provisor (same secret; the default `--format json`; `--tenant`/`--events` optional;
Provisor's database is `PROVISOR_DATABASE_URL` or `--database-url`, by default `./provisor.db`)::

    provisor webhook add http://127.0.0.1:8001/provisioning --secret "$WEBHOOK_SECRET"

Routes: `POST /provisioning` (the webhook) and `GET /accounts` (the table as JSON).

What it does with each delivery, in this order:

1. Verifies `Provisor-Signature` over the raw body with `provisor.events.verify_signature` (an
   app that does not install Provisor can use `verify_signature_stdlib` below). A bad, missing or
   stale (older than `tolerance` seconds: a replay) signature gets 401 and changes nothing.
2. De-duplicates on the event id: delivery is at least once (e.g. when our 2xx is lost, Provisor
   sends the event again). The id is recorded in `processed_events` in the *same transaction* as
   the change, so an event is applied exactly once, and a duplicate just gets 200.
3. Applies the change to `accounts`, keyed by the event's tenant and resource id (created/updated/
   activated/deactivated: upsert from the User in the payload, so deactivated locks the account out at
   once; deleted: delete that tenant's row).
4. Answers 2xx only after its commit. If anything fails it answers 500 (nothing was committed), and
   Provisor retries with backoff, holding back later events for the same user until it succeeds.

`processed_events` grows by one row per event; delete rows older than Provisor's retry window
(by default 8 attempts, about 4 minutes; longer if you redrive dead deliveries) if that matters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, MetaData, String, Table, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from provisor.events import verify_signature

log = logging.getLogger("webhook_receiver")

SIGNATURE_HEADER = "Provisor-Signature"
USER_UPSERT_OPS = ("created", "updated", "activated", "deactivated")

#: `verify(secret, header, raw_body, tolerance) -> bool`
Verifier = Callable[[str, str, bytes, int], bool]

metadata = MetaData()

#: One row per (tenant, SCIM id): ids are unique only within a tenant (`provisor export` / `import` copy a
#: user into another tenant with the same id), so a key of the id alone would let one tenant's delete
#: remove another tenant's account.
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

#: Event ids already applied (`<tenant>:<seq>`), for de-duplication.
processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("received_at", String(40), nullable=False),
)


def verify_signature_stdlib(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The same check as `provisor.events.verify_signature`, for apps without Provisor installed.

    `Provisor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`; any of
    several `v1` entries may match (secret rotation). Always use the raw request bytes.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(time.time() - timestamp) > tolerance:
        return False
    message = str(timestamp).encode("ascii") + b"." + body
    expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def verify_with_provisor(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    return verify_signature(secret, header, body, tolerance=tolerance)


def receiver_engine(url: str) -> AsyncEngine:
    """An async engine for a plain `sqlite:///...` or `postgresql://...` URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed.set(drivername="sqlite+aiosqlite"))

        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        event.listen(engine.sync_engine, "connect", _pragmas)
        return engine
    return create_async_engine(parsed.set(drivername="postgresql+asyncpg"))


def _insert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def primary_email(user: dict[str, Any]) -> str | None:
    """The primary email address, else the first one, else None."""
    emails = [e for e in user.get("emails") or [] if isinstance(e, dict) and e.get("value")]
    for entry in emails:
        if entry.get("primary"):
            return str(entry["value"])
    return str(emails[0]["value"]) if emails else None


async def claim_event(conn: AsyncConnection, event_id: str) -> bool:
    """Record the event id; False if it was already recorded (a redelivery).

    On PostgreSQL a concurrent delivery of the same id waits here for the first one's transaction:
    if that commits this returns False, if it rolls back this one goes ahead.
    """
    now = datetime.now(UTC).isoformat()
    statement = _insert(conn)(processed_events).values(event_id=event_id, received_at=now)
    result = await conn.execute(statement.on_conflict_do_nothing(index_elements=["event_id"]))
    return bool(result.rowcount == 1)


async def apply_event(conn: AsyncConnection, body: dict[str, Any]) -> None:
    """The accounts-table logic (the same as examples/hooks_app.py), from the webhook JSON body."""
    if body.get("resourceType") != "User":
        return  # Groups are not mirrored by this app
    op, tenant, scim_id = body.get("op"), str(body["tenant"]), str(body["resourceId"])
    if op == "deleted":
        await conn.execute(delete(accounts).where(accounts.c.tenant == tenant, accounts.c.scim_id == scim_id))
        return
    user = body.get("payload") or {}
    if op not in USER_UPSERT_OPS or "userName" not in user:
        return
    row = {
        "tenant": tenant,
        "scim_id": scim_id,
        "user_name": user["userName"],
        "email": primary_email(user),
        "active": bool(user.get("active", True)),  # deactivated: false, the account is locked out
        "updated_at": str(body["at"]),
    }
    statement = _insert(conn)(accounts).values(**row)
    key = ["tenant", "scim_id"]
    changes = {name: statement.excluded[name] for name in row if name not in key}
    await conn.execute(statement.on_conflict_do_update(index_elements=key, set_=changes))


def create_receiver_app(
    database_url: str | None = None,
    secret: str | None = None,
    *,
    tolerance: int = 300,
    verify: Verifier = verify_with_provisor,
) -> Starlette:
    """`POST /provisioning` (the webhook) and `GET /accounts`. An empty secret disables signature
    checks; only do that when the webhook was added without `--secret` on a trusted network."""
    url = database_url or os.environ.get("RECEIVER_DATABASE_URL", "sqlite:///./receiver.db")
    key = os.environ.get("WEBHOOK_SECRET", "") if secret is None else secret
    engine = receiver_engine(url)

    async def provisioning(request: Request) -> Response:
        raw = await request.body()  # verify the exact bytes Provisor signed, before parsing
        if key and not verify(key, request.headers.get(SIGNATURE_HEADER, ""), raw, tolerance):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if request.headers.get("content-type", "").startswith("application/secevent+jwt"):
            return JSONResponse({"error": "register this webhook with --format json"}, status_code=415)
        try:
            body = json.loads(raw)
            event_id = str(body["id"])  # from the signed body, not the unsigned Provisor-Event-Id header
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not a Provisor event"}, status_code=400)
        try:
            async with engine.begin() as conn:  # commits on leaving the block, rolls back on error
                applied = await claim_event(conn, event_id)
                if applied:
                    await apply_event(conn, body)
        except Exception:
            log.exception("event %s not applied; Provisor will retry it", event_id)
            return JSONResponse({"error": "not applied"}, status_code=500)
        # Only now, after the commit, does Provisor get its 2xx.
        return JSONResponse({"event": event_id, "status": "applied" if applied else "duplicate"})

    async def list_accounts(request: Request) -> Response:
        async with engine.connect() as conn:
            query = select(accounts).order_by(accounts.c.tenant, accounts.c.user_name)
            rows = (await conn.execute(query)).mappings()
            return JSONResponse({"accounts": [dict(row) for row in rows]})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        yield
        await engine.dispose()

    return Starlette(
        routes=[
            Route("/provisioning", provisioning, methods=["POST"]),
            Route("/accounts", list_accounts),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    import uvicorn

    app = create_receiver_app()
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8001")))


if __name__ == "__main__":
    main()
