"""The webhook delivery worker: fan out new events, lease due deliveries, POST them, retry.

It runs as a background task in every serving process; the database is the only coordination
(see `provisor.storage.webhooks`), so any number of processes may run it. Delivery is
at-least-once: a receiver must de-duplicate on `Provisor-Event-Id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.clock import format_instant
from provisor.events.model import Event
from provisor.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from provisor.storage import webhooks as store
from provisor.storage.event_log import DEFAULT_GAP_GRACE_SECONDS, latest_seq, prune_events
from provisor.storage.transactions import read_transaction, write_transaction

log = logging.getLogger("provisor.webhooks")

_SET_EVENTS = {
    "created": "urn:ietf:params:SCIM:event:prov:create:full",
    "updated": "urn:ietf:params:SCIM:event:prov:put:full",
    "deleted": "urn:ietf:params:SCIM:event:prov:delete",
    "activated": "urn:ietf:params:SCIM:event:prov:activate",
    "deactivated": "urn:ietf:params:SCIM:event:prov:deactivate",
    "member_added": "urn:ietf:params:SCIM:event:prov:patch:full",
    "member_removed": "urn:ietf:params:SCIM:event:prov:patch:full",
}


@dataclass(frozen=True)
class WorkerConfig:
    max_attempts: int = 8
    lease_seconds: float = 30.0
    poll_interval: float = 0.2
    request_timeout: float = 10.0
    batch: int = 50
    concurrency: int = 8
    backoff_base: float = 2.0
    backoff_cap: float = 3600.0
    gap_grace: float = DEFAULT_GAP_GRACE_SECONDS
    #: Prune events older than this (seconds); None keeps them forever.
    retention_seconds: float | None = None
    prune_interval: float = 3600.0


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential delay after the `attempts`-th failure, with jitter in [50%, 100%] so that
    deliveries that failed together do not retry in lockstep."""
    delay = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + random.random() / 2)


def render_body(event: Event, format: str, audience: str) -> bytes:
    """The request body: the feed's JSON event, or a Security Event Token (RFC 8417) claim set
    modelled on the SCIM events draft (sent as JSON, not as a JWS)."""
    if format != "set":
        return orjson.dumps(event.to_json())
    kind = "Users" if event.resource_type == "User" else "Groups"
    data: dict[str, Any] = {}
    if event.op in ("member_added", "member_removed") and event.payload:
        op = "add" if event.op == "member_added" else "remove"
        values = [{"value": m} for m in event.payload.get("members", [])]
        data = {"Operations": [{"op": op, "path": "members", "value": values}]}
    elif event.payload is not None:
        data = event.payload
    claims = {
        "iss": "provisor",
        "iat": int(time.time()),
        "jti": event.id,
        "aud": [audience],
        "txn": str(event.seq),
        "sub_id": {"format": "scim", "uri": f"/{kind}/{event.resource_id}"},
        "events": {_SET_EVENTS.get(event.op, f"urn:provisor:event:{event.op}"): {"data": data}},
    }
    return orjson.dumps(claims)


class WebhookWorker:
    def __init__(
        self, engine: AsyncEngine, config: WorkerConfig | None = None, client: httpx.AsyncClient | None = None
    ) -> None:
        self.engine = engine
        self.config = config or WorkerConfig()
        self._client = client
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._last_prune = 0.0

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="provisor-webhooks")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        own_client = self._client is None
        client = self._client or httpx.AsyncClient(timeout=self.config.request_timeout)
        try:
            while not self._stopping.is_set():
                try:
                    busy = await self.run_once(client)
                    await self._maybe_prune()
                except Exception:
                    log.exception("webhook worker iteration failed; retrying")
                    busy = 0
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.config.poll_interval)
        finally:
            if own_client:
                await client.aclose()

    # ---- one pass -------------------------------------------------------------------------------

    async def run_once(self, client: httpx.AsyncClient) -> int:
        """Fan out, then lease and send one batch. Returns how many deliveries were attempted."""
        await self.fan_out()
        cfg = self.config
        async with read_transaction(self.engine) as conn:
            keys = await store.due_keys(conn, limit=cfg.batch)
        if not keys:
            return 0
        async with write_transaction(self.engine) as conn:
            deliveries = await store.claim(conn, keys, lease_seconds=cfg.lease_seconds)
        gate = asyncio.Semaphore(cfg.concurrency)

        async def send(delivery: store.Delivery) -> None:
            async with gate:
                await self.deliver(client, delivery)

        await asyncio.gather(*(send(d) for d in deliveries))
        return len(deliveries)

    async def fan_out(self) -> int:
        """Create deliveries for every webhook that is behind the head of the log."""
        async with read_transaction(self.engine) as conn:
            head = await latest_seq(conn)
            behind = [w.id for w in await store.list_webhooks(conn) if not w.disabled and w.cursor < head]
        added = 0
        for webhook_id in behind:
            async with write_transaction(self.engine) as conn:
                added += await store.fan_out(conn, webhook_id, gap_grace=self.config.gap_grace)
        return added

    async def deliver(self, client: httpx.AsyncClient, delivery: store.Delivery) -> bool:
        hook, event = delivery.webhook, delivery.event
        body = render_body(event, hook.format, hook.url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "provisor-webhooks",
            SIGNATURE_HEADER: sign(hook.secret, body),
            EVENT_ID_HEADER: event.id,
        }
        error: str | None = None
        try:
            timeout = self.config.request_timeout
            response = await client.post(hook.url, content=body, headers=headers, timeout=timeout)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        async with write_transaction(self.engine) as conn:
            if error is None:
                await store.mark_delivered(conn, hook.id, event.seq)
                return True
            attempts = delivery.attempts + 1
            retry_in = None
            if attempts < self.config.max_attempts:
                retry_in = backoff(attempts, self.config.backoff_base, self.config.backoff_cap)
            await store.mark_failed(conn, hook.id, event.seq, error=error, retry_in=retry_in)
        log.warning(
            "webhook %s: event %s attempt %d failed (%s)%s",
            hook.id,
            event.id,
            attempts,
            error,
            "; giving up" if retry_in is None else f"; retrying in {retry_in:.1f}s",
        )
        return False

    async def _maybe_prune(self) -> None:
        cfg = self.config
        if cfg.retention_seconds is None or time.monotonic() - self._last_prune < cfg.prune_interval:
            return
        self._last_prune = time.monotonic()
        cutoff = format_instant(datetime.now(UTC) - timedelta(seconds=cfg.retention_seconds))
        async with write_transaction(self.engine) as conn:
            pruned = await prune_events(conn, cutoff)
        if pruned:
            log.info("pruned %d events older than %s", pruned, cutoff)
