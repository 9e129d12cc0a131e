"""The webhook delivery worker: fan out new events, lease due deliveries, POST them, retry.

It runs as a background task in every serving process; the database is the only coordination
(see `provisor.storage.webhooks`), so any number of processes may run it. Delivery is
at-least-once: a receiver must de-duplicate on `Provisor-Event-Id`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from provisor.clock import format_instant
from provisor.events.model import Event
from provisor.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from provisor.events.wakeup import WAKE_GAP, Wakeup
from provisor.storage import webhooks as store
from provisor.storage.event_log import DEFAULT_GAP_GRACE_SECONDS, latest_seq, prune_events
from provisor.storage.faults import OutageLog
from provisor.storage.handles import AsyncEngine
from provisor.storage.tombstones import purge_expired
from provisor.storage.transactions import autocommit, read_transaction, write_transaction
from provisor.telemetry.metrics import WEBHOOK_DELIVERIES

log = logging.getLogger("provisor.webhooks")

#: RFC 9967 section 7.4 event URIs (the registered, lowercase `scim` spelling) per Provisor op.
SET_EVENT_URIS = {
    "created": "urn:ietf:params:scim:event:prov:create:full",
    "updated": "urn:ietf:params:scim:event:prov:put:full",
    "deleted": "urn:ietf:params:scim:event:prov:delete",
    "activated": "urn:ietf:params:scim:event:prov:activate",
    "deactivated": "urn:ietf:params:scim:event:prov:deactivate",
    "member_added": "urn:ietf:params:scim:event:prov:patch:full",
    "member_removed": "urn:ietf:params:scim:event:prov:patch:full",
    # A restore brings the resource back under its old id: to a receiver, a create (with data).
    "restored": "urn:ietf:params:scim:event:prov:create:full",
    # Not SCIM provisioning events (no RFC 9967 URI): a change of the user's application roles.
    "role_granted": "urn:provisor:event:role:granted",
    "role_revoked": "urn:provisor:event:role:revoked",
}
SET_CONTENT_TYPE = "application/secevent+jwt"
SET_ISSUER = "provisor"
_PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_JTI_NAMESPACE = uuid.UUID("6f1e3c52-7a0e-4c1b-9a55-2f4b1d7c9e21")
#: Ops whose payload goes out as the SET's `data`.
_WITH_DATA = frozenset({"created", "updated", "restored", "role_granted", "role_revoked"})


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
    #: Expired tombstones are purged at most this often (seconds).
    tombstone_purge_interval: float = 600.0
    #: Woken passes start at most this often (events/wakeup.py).
    wake_gap: float = WAKE_GAP


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential delay after the `attempts`-th failure, with jitter in [50%, 100%] so that
    deliveries that failed together do not retry in lockstep."""
    delay = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + random.random() / 2)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def set_claims(
    event: Event, audience: str, webhook_id: str = "", issued_at: int | None = None
) -> dict[str, Any]:
    """The SET claim set for `event` per RFC 9967 (SCIM profile) and RFC 8417.

    `jti` is unique per SET: derived from the webhook and the event, so a retry of the same
    delivery repeats it (a receiver de-duplicates on it) while each webhook gets its own. `txn` is
    the event id, the same for every SET about that change. `sub_id` (RFC 9493, format `scim`)
    names the resource; there is no `sub` (RFC 9967 section 2.1).
    """
    kind = "Users" if event.resource_type == "User" else "Groups"
    payload: dict[str, Any] = {}
    if event.op in ("member_added", "member_removed"):
        op = "add" if event.op == "member_added" else "remove"
        values = [{"value": m} for m in (event.payload or {}).get("members", [])]
        payload["data"] = {
            "schemas": [_PATCH_OP],
            "Operations": [{"op": op, "path": "members", "value": values}],
        }
    elif (
        event.op in ("created", "updated", "restored", "role_granted", "role_revoked")
        and event.payload is not None
    ):
        payload["data"] = event.payload
    # delete, activate and deactivate carry no "data" (RFC 9967 sections 2.4.4 - 2.4.6).
    if event.version is not None and event.op != "deleted":
        payload["version"] = f'W/"{event.version}"'
    sub_id: dict[str, Any] = {
        "format": "scim",
        "uri": f"/{kind}/{event.resource_id}",
        "id": event.resource_id,
    }
    external_id = (event.payload or {}).get("externalId")
    if isinstance(external_id, str):
        sub_id["externalId"] = external_id
    at = datetime.strptime(event.at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return {
        "iss": SET_ISSUER,
        "iat": int(time.time()) if issued_at is None else issued_at,
        "jti": uuid.uuid5(_JTI_NAMESPACE, f"{webhook_id}:{event.id}").hex,
        "aud": audience,
        "txn": event.id,
        "toe": int(at.timestamp()),
        "sub_id": sub_id,
        "events": {SET_EVENT_URIS.get(event.op, f"urn:provisor:event:{event.op}"): payload},
    }


def encode_set(claims: dict[str, Any], secret: str) -> bytes:
    """A compact JWS (RFC 7515) of `claims`: HS256 with `secret`, or unsecured (`alg: none`,
    RFC 7519 section 6) when `secret` is empty. The JOSE `typ` is `secevent+jwt` (RFC 8417)."""
    header = {"typ": "secevent+jwt", "alg": "HS256" if secret else "none"}
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}".encode("ascii")
    if not secret:
        return signing_input + b"."
    mac = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return signing_input + b"." + _b64url(mac).encode("ascii")


def render_body(event: Event, format: str, audience: str, *, secret: str = "", webhook_id: str = "") -> bytes:
    """The request body: the feed's JSON event, or (format `set`) a Security Event Token."""
    if format != "set":
        return orjson.dumps(event.to_json())
    return encode_set(set_claims(event, audience, webhook_id), secret)


class WebhookWorker:
    def __init__(
        self, engine: AsyncEngine, config: WorkerConfig | None = None, client: httpx.AsyncClient | None = None
    ) -> None:
        self.engine = engine
        self.config = config or WorkerConfig()
        self._client = client
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wakeup = Wakeup(self.config.poll_interval, self.config.wake_gap)
        #: Whether the last pass found any webhook; until one exists a wake-up would be a wasted pass.
        self._has_webhooks = True
        self._last_prune = -math.inf  # the first pass prunes at once
        self._last_purge = -math.inf

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="provisor-webhooks")

    def wake(self) -> None:
        """Start the next pass now instead of at the end of the poll interval: this process has
        just committed events. Other processes' events are still found by polling, and so is the
        first webhook (a process without webhooks ignores wake-ups)."""
        if self._has_webhooks:
            self._wakeup.wake()

    async def stop(self) -> None:
        self._stopping.set()
        self._wakeup.wake()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        own_client = self._client is None
        client = self._client or httpx.AsyncClient(timeout=self.config.request_timeout)
        outage = OutageLog(log, "webhook worker")
        try:
            while not self._stopping.is_set():
                self._wakeup.begin_pass()
                try:
                    busy = await self.run_once(client)
                    await self.maybe_prune()
                    await self.maybe_purge_tombstones()
                    outage.succeeded()
                except Exception as exc:
                    outage.failed(exc)
                    busy = 0
                if not busy:
                    await self._wakeup.idle()
        finally:
            if own_client:
                await client.aclose()

    # ---- one pass -------------------------------------------------------------------------------

    async def run_once(self, client: httpx.AsyncClient) -> int:
        """Fan out, then lease and send one batch. Returns how many deliveries were attempted."""
        added = await self.fan_out()
        self._has_webhooks = added is not None
        if added is None:
            return 0  # no webhook at all, so no delivery either (removing a webhook deletes its own)
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

    async def fan_out(self) -> int | None:
        """Create deliveries for every webhook that is behind the head of the log; None when no
        webhook exists. That case is one statement outside a transaction: every worker polls
        several times a second, and most installations have few webhooks or none."""
        async with autocommit(self.engine) as conn:
            hooks = await store.list_webhooks(conn)
            if not hooks:
                return None
            head = await latest_seq(conn)
        behind = [w.id for w in hooks if not w.disabled and w.cursor < head]
        added = 0
        for webhook_id in behind:
            async with write_transaction(self.engine) as conn:
                added += await store.fan_out(conn, webhook_id, gap_grace=self.config.gap_grace)
        return added

    async def deliver(self, client: httpx.AsyncClient, delivery: store.Delivery) -> bool:
        hook, event = delivery.webhook, delivery.event
        body = render_body(event, hook.format, hook.url, secret=hook.secret, webhook_id=hook.id)
        headers = {
            "Content-Type": SET_CONTENT_TYPE if hook.format == "set" else "application/json",
            "User-Agent": "provisor-webhooks",
            EVENT_ID_HEADER: event.id,
        }
        if hook.secret:
            headers[SIGNATURE_HEADER] = sign(hook.secret, body)
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
                WEBHOOK_DELIVERIES.labels("delivered").inc()
                return True
            attempts = delivery.attempts + 1
            retry_in = None
            if attempts < self.config.max_attempts:
                retry_in = backoff(attempts, self.config.backoff_base, self.config.backoff_cap)
            await store.mark_failed(conn, hook.id, event.seq, error=error, retry_in=retry_in)
        WEBHOOK_DELIVERIES.labels("dead" if retry_in is None else "retry").inc()
        log.warning(
            "webhook %s: event %s attempt %d failed (%s)%s",
            hook.id,
            event.id,
            attempts,
            error,
            "; giving up" if retry_in is None else f"; retrying in {retry_in:.1f}s",
        )
        return False

    async def maybe_purge_tombstones(self) -> int | None:
        """Purge expired tombstones (docs/delete-policy.md) if `tombstone_purge_interval` has passed
        since the last purge; returns how many were purged, None if not due."""
        if time.monotonic() - self._last_purge < self.config.tombstone_purge_interval:
            return None
        self._last_purge = time.monotonic()
        purged = await purge_expired(self.engine)
        if purged:
            log.info("purged %d expired tombstones", purged)
        return purged

    async def maybe_prune(self) -> int | None:
        """Prune events older than the retention if `prune_interval` has passed since the last
        prune (the worker calls this every pass); returns how many were pruned, None if not due."""
        cfg = self.config
        if cfg.retention_seconds is None or time.monotonic() - self._last_prune < cfg.prune_interval:
            return None
        self._last_prune = time.monotonic()
        cutoff = format_instant(datetime.now(UTC) - timedelta(seconds=cfg.retention_seconds))
        pruned = await prune_events(self.engine, cutoff)
        if pruned:
            log.info("pruned %d events older than %s", pruned, cutoff)
        return pruned
