"""Holding a database's write lock from outside the server, as another client or tool would."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg


@contextmanager
def write_lock_held(url: str) -> Iterator[None]:
    """While inside: nobody else can write users (SQLite: `BEGIN IMMEDIATE` and the writers' gate
    held by another connection; PostgreSQL: `resources` locked in EXCLUSIVE mode, reads still pass)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        gate = os.open(os.path.abspath(path) + ".write-lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(gate, fcntl.LOCK_EX)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()
            fcntl.flock(gate, fcntl.LOCK_UN)
            os.close(gate)
        return
    with _pg_lock(url, "LOCK TABLE resources IN EXCLUSIVE MODE"):
        yield


@contextmanager
def pg_table_locked(url: str, table: str, mode: str) -> Iterator[None]:
    """PostgreSQL: `table` locked in `mode` by another connection while inside."""
    with _pg_lock(url, f"LOCK TABLE {table} IN {mode} MODE"):
        yield


@contextmanager
def sqlite_lock_only(url: str) -> Iterator[None]:
    """SQLite's write lock taken by a connection outside Provisor (no gate), as a tool would."""
    path = url.split("///", 1)[1]
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


@contextmanager
def _pg_lock(url: str, statement: str) -> Iterator[None]:
    taken = threading.Event()
    release = threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.execute(statement)
                taken.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait)
        finally:
            await conn.close()

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            taken.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    taken.wait(30)
    if failure:
        raise failure[0]
    try:
        yield
    finally:
        release.set()
        thread.join(30)
