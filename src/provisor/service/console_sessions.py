"""Console sessions: opened by an admin token, found by their cookie, extended while in use."""

from __future__ import annotations

from datetime import timedelta

from provisor.storage import console_sessions as store
from provisor.storage import tokens as token_store
from provisor.storage.console_sessions import Session
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import ConsoleSessions, Tokens
from provisor.storage.transactions import read_transaction, write_transaction

__all__ = ["Session", "close", "extend", "find", "open_with_token"]

#: Storage as the contract names it (storage/interfaces/).
_store: ConsoleSessions = store
_tokens: Tokens = token_store


async def find(engine: AsyncEngine, session_id: str, at: str) -> Session | None:
    """The live session of a cookie value; None when unknown, ended or expired."""
    async with read_transaction(engine) as conn:
        return await _store.find_session(conn, session_id, at)


async def extend(engine: AsyncEngine, id_hash: str, *, idle: timedelta) -> None:
    async with write_transaction(engine) as conn:
        await _store.extend_session(conn, id_hash, idle=idle)


async def open_with_token(
    engine: AsyncEngine, secret: str, at: str, *, idle: timedelta, absolute: timedelta
) -> str | None:
    """A new session id when `secret` is a live admin token, else None. Ended sessions are pruned
    on the way, so the table holds only live ones and those of the last sign-in's moment."""
    found = await _tokens.find_active(engine, secret, at)
    if found is None or found[0].kind != "admin":
        return None
    async with write_transaction(engine) as conn:
        await _store.prune_sessions(conn, at)
        return await _store.open_session(conn, found[0].id, idle=idle, absolute=absolute)


async def close(engine: AsyncEngine, session_id: str) -> None:
    async with write_transaction(engine) as conn:
        await _store.close_session(conn, session_id)
