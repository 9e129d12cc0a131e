"""The web console's server-side sessions (docs/console.md, "Security").

The browser holds a random session id; the table holds only its SHA-256 hash. A session is valid
while both its idle and absolute expiries lie ahead and the admin token that opened it is neither
revoked nor expired, so revoking that token ends its sessions too. Any worker can check a session:
the state is in the database, not in a process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from provisor.clock import format_instant
from provisor.storage.tables import console_sessions, tokens


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Session:
    id_hash: str
    token_id: str
    last_seen: str
    idle_expires_at: str
    expires_at: str


def _instant(moment: datetime) -> str:
    return format_instant(moment)


async def open_session(conn: AsyncConnection, token_id: str, *, idle: timedelta, absolute: timedelta) -> str:
    """Store a new session for the admin token `token_id`; return the session id (never stored)."""
    session_id = secrets.token_urlsafe(32)
    moment = datetime.now(UTC)
    at = _instant(moment)
    await conn.execute(
        console_sessions.insert().values(
            id_hash=hash_session_id(session_id),
            token_id=token_id,
            created=at,
            last_seen=at,
            idle_expires_at=_instant(moment + idle),
            expires_at=_instant(moment + absolute),
        )
    )
    return session_id


async def find_session(conn: AsyncConnection, session_id: str, at: str) -> Session | None:
    """The live session for `session_id`, or None (unknown, expired, or its token revoked/expired)."""
    s, t = console_sessions.c, tokens.c
    query = (
        select(s.id_hash, s.token_id, s.last_seen, s.idle_expires_at, s.expires_at)
        .select_from(console_sessions.join(tokens, tokens.c.id == s.token_id))
        .where(
            s.id_hash == hash_session_id(session_id),
            s.idle_expires_at > at,
            s.expires_at > at,
            t.kind == "admin",
            t.revoked_at.is_(None),
            or_(t.expires_at.is_(None), t.expires_at > at),
        )
    )
    row = (await conn.execute(query)).first()
    return Session(*row) if row is not None else None


async def extend_session(conn: AsyncConnection, id_hash: str, *, idle: timedelta) -> None:
    """Push the idle expiry forward (the caller writes at most once a minute per session)."""
    moment = datetime.now(UTC)
    await conn.execute(
        update(console_sessions)
        .where(console_sessions.c.id_hash == id_hash)
        .values(last_seen=_instant(moment), idle_expires_at=_instant(moment + idle))
    )


async def close_session(conn: AsyncConnection, session_id: str) -> None:
    await conn.execute(
        delete(console_sessions).where(console_sessions.c.id_hash == hash_session_id(session_id))
    )


async def prune_sessions(conn: AsyncConnection, at: str) -> int:
    s = console_sessions.c
    result = await conn.execute(
        delete(console_sessions).where(or_(s.expires_at <= at, and_(s.idle_expires_at <= at)))
    )
    return int(result.rowcount or 0)
