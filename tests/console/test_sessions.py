"""Console sessions in the database (storage/console_sessions.py), on both engines: only a hash is
stored, the idle and absolute expiries end a session, and so does revoking its admin token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.clock import format_instant, now
from provisor.storage import console_sessions as store
from provisor.storage.tables import console_sessions
from provisor.storage.tenants import ensure_tenant
from provisor.storage.tokens import create_token, revoke
from provisor.storage.transactions import write_transaction
from tests.scim_client import run_db


def _in(delta: timedelta) -> str:
    return format_instant(datetime.now(UTC) + delta)


def test_sessions_expire_when_idle_at_the_absolute_limit_and_with_their_token(database_url: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        async with write_transaction(engine) as conn:
            info, _ = await create_token(conn, tenant_id=None, name="session-test", kind="admin")
            sid = await store.open_session(
                conn, info.id, idle=timedelta(hours=1), absolute=timedelta(hours=3)
            )
            stored = (await conn.execute(select(console_sessions.c.id_hash))).scalars().all()
            assert sid not in stored and store.hash_session_id(sid) in stored
            assert await store.find_session(conn, sid, now()) is not None
            assert await store.find_session(conn, sid, _in(timedelta(minutes=61))) is None  # idle
            session = await store.find_session(conn, sid, now())
            assert session is not None
            for _ in range(3):  # activity pushes the idle expiry, never past the absolute one
                await store.extend_session(conn, session.id_hash, idle=timedelta(hours=5))
            assert await store.find_session(conn, sid, _in(timedelta(minutes=150))) is not None
            assert await store.find_session(conn, sid, _in(timedelta(minutes=181))) is None  # absolute
            assert await store.find_session(conn, sid + "x", now()) is None
            await revoke(conn, info.id)
            assert await store.find_session(conn, sid, now()) is None  # its token is revoked
            assert await store.prune_sessions(conn, _in(timedelta(hours=4))) >= 1

    run_db(database_url, work)


def test_a_scim_token_cannot_hold_a_session(database_url: str, tenant_id: str) -> None:
    async def work(engine: AsyncEngine) -> None:
        async with write_transaction(engine) as conn:
            await ensure_tenant(conn, tenant_id)
            info, _ = await create_token(conn, tenant_id=tenant_id, name="idp")
            sid = await store.open_session(
                conn, info.id, idle=timedelta(hours=1), absolute=timedelta(hours=1)
            )
            assert await store.find_session(conn, sid, now()) is None

    run_db(database_url, work)
