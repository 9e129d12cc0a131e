"""Driver connections kept between direct statements, and the engine's reader: what both
databases' drivers (storage/postgres/driver.py, storage/sqlite/driver.py) share.

Checking a connection out of SQLAlchemy's pool costs about 50 µs of CPU, so a reader keeps a few
of them checked out for the statements of storage/direct.py. Kept connections are closed when the
engine is disposed.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from provisor.budget import Commit


class KeptConnections:
    """Up to `keep` driver connections of one engine, borrowed by one statement at a time."""

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        # Weak: the registry below is keyed weakly by the engine, and must not keep it alive.
        self._engine = weakref.ref(engine.sync_engine)
        self.dialect = engine.dialect
        self._kept: list[PoolProxiedConnection] = []
        self._keep = keep
        self._closed = False

    async def _connection(self) -> PoolProxiedConnection:
        while self._kept:
            raw = self._kept.pop()
            if self._usable(raw):
                return raw
            await greenlet_spawn(raw.invalidate)
        engine = self._engine()
        if engine is None or self._closed:
            raise RuntimeError("the engine of this DirectReader was disposed")
        return await greenlet_spawn(engine.raw_connection)

    def _usable(self, raw: PoolProxiedConnection) -> bool:
        """Whether a kept connection may take a statement (a driver that can tell it was closed
        by the server says so here)."""
        return True

    @asynccontextmanager
    async def _borrowed(self, commit: Commit | None = None) -> AsyncIterator[Any]:
        """A kept (or new) connection's driver. It goes back to the kept list afterwards, unless a
        statement broke off (cancelled mid-protocol, server gone): its state is then unknown and it
        is never reused. An integrity error fails the statement whole and leaves it fine. Nor is
        a connection reused after `commit` was aborted: a cancel request that arrives late would
        hit its next statement."""
        raw = await self._connection()
        try:
            yield raw.driver_connection
        except IntegrityError:
            if commit is not None and commit.aborted:
                await greenlet_spawn(raw.invalidate)
            else:
                await self._release(raw)
            raise
        except BaseException:
            await greenlet_spawn(raw.invalidate)
            raise
        if commit is not None and commit.aborted:
            await greenlet_spawn(raw.invalidate)
        else:
            await self._release(raw)

    async def _release(self, raw: PoolProxiedConnection) -> None:
        if self._closed:  # the engine was disposed while this statement ran
            await greenlet_spawn(raw.invalidate)
        elif len(self._kept) < self._keep:
            self._kept.append(raw)
        else:
            await greenlet_spawn(raw.close)

    def close(self) -> None:
        """Close the kept connections (called from `Engine.dispose`, inside SQLAlchemy's greenlet)."""
        self._closed = True
        kept, self._kept = self._kept, []
        for raw in kept:
            raw.invalidate()


R = TypeVar("R", bound=KeptConnections)


class Readers(Generic[R]):
    """Each engine's reader of one database kind, made on first use and closed with the engine."""

    def __init__(self, make: Callable[[AsyncEngine], R]) -> None:
        self._make = make
        self._found: weakref.WeakKeyDictionary[Engine, R] = weakref.WeakKeyDictionary()

    def of(self, engine: AsyncEngine) -> R:
        found = self._found.get(engine.sync_engine)
        if found is None:
            found = self._make(engine)
            self._found[engine.sync_engine] = found
            if not event.contains(engine.sync_engine, "engine_disposed", self._on_dispose):
                event.listen(engine.sync_engine, "engine_disposed", self._on_dispose)
        return found

    def alive(self) -> list[R]:
        """The readers of the engines alive (for tests that trace every connection)."""
        return list(self._found.values())

    def _on_dispose(self, engine: Engine) -> None:
        found = self._found.pop(engine, None)
        if found is not None:
            found.close()
