"""What a fault test checks afterwards: the stored data itself, read straight from the database."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson


@dataclass(frozen=True)
class Stored:
    """One tenant's users (userName -> (id, version, doc)) and events ((resource_id, op, version))."""

    users: dict[str, tuple[str, int, dict[str, Any]]]
    events: list[tuple[str, str, int]]

    def events_of(self, resource_id: str) -> list[tuple[str, int]]:
        return [(op, version) for rid, op, version in self.events if rid == resource_id]


_USERS = "SELECT id, version, doc FROM resources WHERE tenant_id = {p} AND resource_type = 'User'"
_EVENTS = "SELECT resource_id, op, version FROM events WHERE tenant_id = {p} ORDER BY seq"


def stored(url: str, tenant_id: str) -> Stored:
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.split("///", 1)[1], timeout=30)
        try:
            users = db.execute(_USERS.format(p="?"), (tenant_id,)).fetchall()
            events = db.execute(_EVENTS.format(p="?"), (tenant_id,)).fetchall()
        finally:
            db.close()
    else:

        async def read() -> tuple[list[Any], list[Any]]:
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                return (
                    await conn.fetch(_USERS.format(p="$1"), tenant_id),
                    await conn.fetch(_EVENTS.format(p="$1"), tenant_id),
                )
            finally:
                await conn.close()

        users, events = asyncio.run(read())
    out: dict[str, tuple[str, int, dict[str, Any]]] = {}
    for rid, version, doc in users:
        body = orjson.loads(doc) if isinstance(doc, (str, bytes)) else doc
        out[body["userName"]] = (rid, int(version), body)
    return Stored(out, [(rid, op, int(version)) for rid, op, version in events])


def integrity_ok(url: str) -> bool:
    """SQLite: `PRAGMA integrity_check` says ok (PostgreSQL: always True)."""
    if not url.startswith("sqlite"):
        return True
    db = sqlite3.connect(url.split("///", 1)[1], timeout=30)
    try:
        return bool(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
    finally:
        db.close()
