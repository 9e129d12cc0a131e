"""The database kind, chosen once per engine: which `Backend` serves it.

The kind follows from the URL the engine was made from (`storage/engine.py`), so a lookup is
one dictionary access; this is the only place that maps a dialect name to an implementation.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from provisor.storage import postgres, sqlite
from provisor.storage.backend import Backend

_BACKENDS: dict[str, Backend] = {found.name: found for found in (postgres.BACKEND, sqlite.BACKEND)}


def backend(bind: AsyncEngine | AsyncConnection) -> Backend:
    """The implementation serving `bind` (an engine or one of its connections)."""
    # Through the sync engine: the async proxies' `dialect` is a property costing ~0.3 µs a call.
    return _BACKENDS[bind.sync_engine.dialect.name]


def named(name: str) -> Backend:
    """The implementation of the database kind `name` ("postgresql" or "sqlite"), for code that
    has a kind's name rather than an engine (a URL's, a test's parameter)."""
    return _BACKENDS[name]
