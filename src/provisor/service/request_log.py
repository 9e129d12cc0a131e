"""The request log writer: rows are gathered in memory and inserted in batches.

A request never waits for the database: `record` only appends (and drops the row, counting it,
when `QUEUE_ROWS` are waiting). A background task inserts what gathered every `FLUSH_SECONDS`. The
log is diagnostics, not the outbox: a crash can lose the last fraction of a second of rows.

In "metadata" mode no request body is stored, and a response body only for an error status (the
server's SCIM error document, so what failed can be named). In "full" mode the bodies are stored
with secrets redacted: every `password` member at any depth, and the `value` of PATCH operations
whose `path` names a password. Bodies that are not JSON are
never stored raw (they could hold anything); only their size is. Headers are never stored, so the
`Authorization` header cannot end up in the log.

Unknown attributes (names in request bodies that no schema of the resource type defines, which
Provisor ignores) are named on the row in every mode but "off", and counted per tenant in every
mode: the counts are folded into `unknown_attributes` with each batch, so a request only pays for
appending its names, and an IdP's mapping typo never vanishes silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from provisor.clock import format_instant
from provisor.storage import request_log as store
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import RequestLog
from provisor.storage.request_log import RequestFilter, UnknownCount
from provisor.storage.transactions import read_transaction, write_transaction

__all__ = ["RequestFilter", "RequestLogWriter", "read_requests", "read_unknown_counts"]

log = logging.getLogger("provisor.request_log")

#: Storage as the contract names it (storage/interfaces/).
_store: RequestLog = store

FLUSH_SECONDS = 0.2
BATCH_ROWS = 500
QUEUE_ROWS = 20_000
PRUNE_EVERY_SECONDS = 3600.0
REDACTED = "[redacted]"
#: Bodies kept in "full" mode are cut to this many characters after redaction.
MAX_STORED_BODY = 65_536
#: At most this many unknown attribute names are kept per request, each cut to this many characters.
MAX_UNKNOWN_NAMES = 50
MAX_UNKNOWN_NAME_LENGTH = 256


@dataclass
class Exchange:
    """What the middleware saw of one request/response."""

    at: str
    request_id: str
    method: str
    path: str
    query: str
    status: int
    duration_ms: float
    tenant_id: str | None
    token_name: str | None
    mode: str
    request_body: bytes
    response_body: bytes
    #: Unknown attributes the request's bodies carried (ignored by the services), in order seen.
    unknown_attributes: tuple[str, ...] = ()


def _is_password_path(path: Any) -> bool:
    return isinstance(path, str) and path.strip().lower().rsplit(":", 1)[-1].split(".")[-1] == "password"


def redact(value: Any) -> Any:
    """A copy of a JSON value with every secret replaced (see the module docstring)."""
    if isinstance(value, list):
        return [redact(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    secret_value = _is_password_path(value.get("path"))
    for key, item in value.items():
        bare = key.lower().rsplit(":", 1)[-1] if isinstance(key, str) else key
        if bare == "password" or (secret_value and isinstance(key, str) and key.lower() == "value"):
            out[key] = REDACTED
        else:
            out[key] = redact(item)
    return out


def redacted_body(raw: bytes) -> str | None:
    if not raw:
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return f"[{len(raw)} bytes, not JSON: not stored]"
    text = orjson.dumps(redact(parsed)).decode()
    return text if len(text) <= MAX_STORED_BODY else text[:MAX_STORED_BODY] + "...[truncated]"


def to_row(exchange: Exchange) -> dict[str, Any]:
    full = exchange.mode == "full"
    return {
        "at": exchange.at,
        "tenant_id": exchange.tenant_id,
        "request_id": exchange.request_id,
        "method": exchange.method[:16],
        "path": exchange.path[:2048],
        "query": exchange.query[:4096] or None,
        "status": exchange.status,
        "duration_ms": round(exchange.duration_ms, 3),
        "token_name": exchange.token_name,
        "request_body": redacted_body(exchange.request_body) if full else None,
        # In metadata mode only an error's body was captured (http/middleware.py).
        "response_body": redacted_body(exchange.response_body) if full or exchange.status >= 400 else None,
        "unknown_attributes": _store.encode_names(exchange.unknown_attributes),
    }


class RequestLogWriter:
    def __init__(self, engine: AsyncEngine, retention_days: int) -> None:
        self.engine = engine
        self.retention_days = retention_days
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._last_prune: float | None = None
        # A plain list, swapped out by the flusher: recording costs one append and wakes nothing.
        self._pending: list[Exchange] = []
        #: Unknown attribute counts per (tenant, name) since the last flush.
        self._unknown: dict[tuple[str, str], UnknownCount] = {}
        self._lock = asyncio.Lock()

    def record(self, exchange: Exchange) -> None:
        if exchange.unknown_attributes:
            exchange.unknown_attributes = tuple(
                name[:MAX_UNKNOWN_NAME_LENGTH] for name in exchange.unknown_attributes[:MAX_UNKNOWN_NAMES]
            )
            if exchange.tenant_id is not None:
                self._count_unknown(exchange.tenant_id, exchange.unknown_attributes, exchange.at)
        if exchange.mode == "off":
            return
        if len(self._pending) >= QUEUE_ROWS:
            self.dropped += 1
            return
        self._pending.append(exchange)

    def _count_unknown(self, tenant_id: str, names: tuple[str, ...], at: str) -> None:
        for name in names:
            seen = self._unknown.get((tenant_id, name))
            if seen is None:
                self._unknown[(tenant_id, name)] = UnknownCount(1, at)
            else:
                seen.count += 1
                seen.last_seen = max(seen.last_seen, at)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="provisor-request-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Insert everything recorded so far (the loop, the admin API, shutdown)."""
        async with self._lock:
            batch, self._pending = self._pending, []
            counts, self._unknown = self._unknown, {}
            for start in range(0, len(batch), BATCH_ROWS):
                await self._insert(batch[start : start + BATCH_ROWS])
            await self._add_counts(counts)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if self._pending or self._unknown:
                await self.flush()
            await self._maybe_prune(loop.time())

    async def _insert(self, batch: list[Exchange]) -> None:
        try:
            await _store.append(self.engine, [to_row(e) for e in batch])
        except Exception as exc:  # diagnostics must never take the server down
            self.dropped += len(batch)
            log.warning("could not write %d request log rows: %s", len(batch), exc)

    async def _add_counts(self, counts: dict[tuple[str, str], UnknownCount]) -> None:
        if not counts:
            return
        try:
            async with write_transaction(self.engine) as conn:
                await _store.add_unknown_counts(conn, counts)
        except Exception as exc:  # diagnostics must never take the server down
            log.warning("could not count %d unknown attributes: %s", len(counts), exc)

    async def _maybe_prune(self, moment: float) -> None:
        if self.retention_days <= 0:
            return
        if self._last_prune is not None and moment - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = moment
        cutoff = format_instant(datetime.now(UTC) - timedelta(days=self.retention_days))
        try:
            removed = await _store.prune(self.engine, cutoff)
            if removed:
                log.info("pruned %d request log rows older than %s", removed, cutoff)
        except Exception as exc:
            log.warning("request log pruning failed: %s", exc)


async def read_requests(
    engine: AsyncEngine, after: int, limit: int, where: RequestFilter
) -> list[dict[str, Any]]:
    """Logged requests with id > `after`, oldest first (`GET /admin/v1/requests`)."""
    async with read_transaction(engine) as conn:
        return await _store.read_requests(conn, after, limit, where)


async def read_unknown_counts(engine: AsyncEngine, tenant_id: str) -> list[dict[str, Any]]:
    """A tenant's unknown attributes, the most frequent first (`GET /admin/v1/unknown-attributes`)."""
    async with read_transaction(engine) as conn:
        return await _store.read_unknown_counts(conn, tenant_id)
