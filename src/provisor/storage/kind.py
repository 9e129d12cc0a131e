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


def backend_named(name: str) -> Backend | None:
    """The implementation for a dialect name (`storage.engine.backend_name` of a URL), None for
    a kind not served: for checks of the configuration made before there is an engine."""
    return _BACKENDS.get(name)


def every_backend() -> tuple[Backend, ...]:
    """Every implementation, for what must recognise any kind's artefacts (a backup file)."""
    return tuple(_BACKENDS.values())
