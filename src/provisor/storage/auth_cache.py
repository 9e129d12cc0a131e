"""Successful token lookups kept per worker, for as long as invalidation is guaranteed.

The token lookup was one of a GET's two round trips. A worker may answer it from memory only while
it holds a `LISTEN provisor_auth` connection: migration 0006's triggers notify that channel in the
same commit as any change to `tokens` or `tenants`, and a notification empties the cache. When the
connection is lost the cache is switched off (every request reads the database again) until a new
connection listens. SQLite has no such channel: there the cache follows a signal file beside the
database that every `auth_write` rewrites after its commit (storage/sqlite/auth_signal.py), checked
before every answer from memory, and lapses every `SIGNAL_TTL_SECONDS`, which bounds what the
signal cannot see (a change by other tools, a writer that died between its commit and its signal).

Notifications can also stop arriving without any error: a firewall silently drops the idle TCP
session, or a pooler in transaction mode (PgBouncer) runs LISTEN on one server connection and
everything else on others. So the listener proves the whole path every `PING_SECONDS`: it sends a
notification with a fresh nonce from another session (a pooled connection of the engine, as a
revocation would) and waits for it to come back on the listening connection. The ping must not
come from the listening connection itself: behind PgBouncer its NOTIFY can land on the very server
connection that ran its LISTEN, which hands the notification back to its sender while every other
session's notifications go unheard (tests/scaleout/test_pgbouncer.py). The cache is switched on
only after the first such round trip, and answers only until twice `PING_SECONDS` after the last
one was sent. Pings are told apart from changes by their payload, so one worker's ping does not empty
another's cache. An engine created from a `pgbouncer=true` URL does not even start the listener
(nor wait for barriers, below: there is nobody to acknowledge them).

A lookup that started before an invalidation must not refill the cache with what it read: `put`
takes the generation seen before the read and drops the value if the cache was emptied since.
Only successful lookups are kept, so unknown secrets cannot fill memory.

A notification is delivered *after* the commit returns to the writer: PostgreSQL signals the
listening backend, which forwards it when idle, and the worker's event loop reads it whenever it
next gets to that socket. Until then a request that reaches the worker is answered from the cache,
so a token revoked (or a tenant deleted) a moment ago could still be accepted. `auth_write` closes
that window: after its commit it sends a barrier notification on the same channel and waits until
every listening connection of the database has acknowledged it. Notifications reach each listener
in commit order, so a listener that acknowledges the barrier has already emptied its cache for the
change. A listener that does not acknowledge (hung, or its connection silently lost) has stopped
answering from its cache by the time the writer gives up: a cache is renewed for twice
`PING_SECONDS` from the moment its last ping was *sent*, and a ping sent before the barrier comes
back before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.contracts import SignalWatch
from provisor.storage.kind import backend
from provisor.storage.postgres.engine import postgres_connect_args
from provisor.storage.transactions import autocommit, write_transaction
from provisor.storage.urls import behind_pgbouncer

log = logging.getLogger("provisor.auth")

CHANNEL = "provisor_auth"
#: Shown in pg_stat_activity, so an operator (and the tests) can find the listening connections.
APPLICATION_NAME = "provisor-auth-listener"

#: How often notifications are proven to arrive; the cache lapses after twice this.
PING_SECONDS = 2.0
PING_PREFIX = "ping:"
#: A writer's barrier on CHANNEL; each listener answers with the same payload on ACK_CHANNEL.
BARRIER_PREFIX = "barrier:"
ACK_CHANNEL = "provisor_auth_ack"
#: How long a writer waits for acknowledgements: by then every unacknowledged cache has lapsed.
BARRIER_TIMEOUT_SECONDS = 2 * PING_SECONDS + 0.5
MAX_RETRY_SECONDS = 10.0
#: Where a signal file stands in for LISTEN/NOTIFY (SQLite): the longest a worker answers from its
#: cache without reading the database again, whatever the signal says.
SIGNAL_TTL_SECONDS = 1.0
#: How long `auth_write` waits when it cannot write the signal: every cache has lapsed by then.
SIGNAL_FAILED_WAIT_SECONDS = SIGNAL_TTL_SECONDS + 0.1

V = TypeVar("V")

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class AuthCache(Generic[V]):
    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self.generation = 0
        self.enabled = False
        #: `time.monotonic()` after which the cache answers nothing until the listener renews it.
        self.valid_until = 0.0
        #: SQLite's signal of changes (`follow`); None where a listener keeps the cache current.
        self.signal: SignalWatch | None = None
        self._entries: dict[str, V] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        if not self.enabled:
            return None
        if self.signal is not None:
            self._follow_signal(self.signal)
        elif time.monotonic() >= self.valid_until:
            return None
        return self._entries.get(key)

    def follow(self, signal: SignalWatch) -> None:
        """Answer while `signal` reports no change, and for `SIGNAL_TTL_SECONDS` at a time."""
        self.signal = signal
        self.valid_until = 0.0
        self.switch(True)

    def _follow_signal(self, signal: SignalWatch) -> None:
        moment = time.monotonic()
        if moment >= self.valid_until:  # lapsed: start over, and find the signal again if replaced
            signal.recheck()
            signal.changed()
            self.invalidate()
            self.valid_until = moment + SIGNAL_TTL_SECONDS
        elif signal.changed():
            self.invalidate()

    def renew(self, seconds: float, since: float | None = None) -> None:
        """Answer until `seconds` after `since` (a `time.monotonic()` reading; default now)."""
        self.valid_until = (time.monotonic() if since is None else since) + seconds

    def put(self, key: str, value: V, generation: int) -> None:
        """Keep `value`, read from the database after `generation` was observed, if still current."""
        if self.signal is not None and self.enabled and self.signal.changed():
            self.invalidate()  # changed since the lookup began: what it read may be stale
        if not self.enabled or generation != self.generation:
            return
        if len(self._entries) >= self.max_entries and key not in self._entries:
            del self._entries[next(iter(self._entries))]  # the oldest: dicts keep insertion order
        self._entries[key] = value

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    def switch(self, on: bool) -> None:
        self.invalidate()
        self.enabled = on


class AuthListener:
    """Keeps one LISTEN connection open for `cache`, reconnecting with backoff when it drops."""

    def __init__(self, engine: AsyncEngine, cache: AuthCache[Any], retry_seconds: float = 0.5) -> None:
        self.engine = engine
        self.cache = cache
        self.retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._nonce = ""
        self._pong = asyncio.Event()
        self._ping_sent = 0.0
        #: One statement at a time on the listening connection (barrier acknowledgements).
        self._sending = asyncio.Lock()
        self._conn: asyncpg.Connection | None = None
        self._acks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Begin listening (PostgreSQL; returns once the first attempt succeeded or failed), or
        follow the database's signal file (SQLite)."""
        if self._task is not None or self.cache.signal is not None:
            return
        signals = backend(self.engine).token_signal
        if signals is not None:
            signal = signals.watch(self.engine)
            if signal is not None:
                self.cache.follow(signal)
            return
        if not backend(self.engine).listen_notify:
            return
        if behind_pgbouncer(self.engine):
            log.info("token cache off: PgBouncer in transaction mode cannot carry LISTEN")
            return
        self._task = asyncio.create_task(self._run(), name="provisor-auth-listener")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout=5.0)

    async def stop(self) -> None:
        self.cache.switch(False)
        if self.cache.signal is not None:
            self.cache.signal.close()
            self.cache.signal = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = self.retry_seconds
        while True:
            try:
                conn = await self._connect()
            except Exception as exc:  # whatever the cause, keep serving (uncached) and retry
                log.warning("token cache off: cannot listen for token changes (%s); retrying", exc)
                self._listening.set()  # start() must not wait on a database that is down
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                continue
            try:
                proven = await self._listen(conn)
            finally:
                self.cache.switch(False)
                self._listening.set()
                if not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2.0))
            delay = self.retry_seconds if proven else min(delay * 2, MAX_RETRY_SECONDS)
            await asyncio.sleep(delay)

    async def _listen(self, conn: asyncpg.Connection) -> bool:
        """Serve from the cache while pings come back on `conn`; return whether one ever did (a
        session that was proven and then failed retries after the short delay, one never proven backs
        off)."""
        lost = asyncio.Event()
        proven = False
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            self._conn = conn
            await conn.add_listener(CHANNEL, self._on_notify)
            while not lost.is_set():
                await self._ping()  # raises when the notification does not come back in time
                if not proven:
                    self.cache.switch(True)  # from here on no change can be missed
                    self._listening.set()
                    proven = True
                self.cache.renew(2 * PING_SECONDS, since=self._ping_sent)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=PING_SECONDS)
            log.warning("token cache off: the listening connection was lost; reconnecting")
        except Exception as exc:
            log.warning("token cache off: listening failed (%s); reconnecting", exc)
        finally:
            self._conn = None
        return proven

    async def _ping(self) -> None:
        self._nonce = f"{PING_PREFIX}{uuid.uuid4().hex}"
        self._pong.clear()
        self._ping_sent = time.monotonic()
        await asyncio.wait_for(self._notify(self._nonce), timeout=PING_SECONDS)
        await asyncio.wait_for(self._pong.wait(), timeout=PING_SECONDS)

    async def _notify(self, payload: str) -> None:
        async with autocommit(self.engine) as other:
            await other.execute(
                text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
            )

    async def _connect(self) -> asyncpg.Connection:
        _, params = self.engine.dialect.create_connect_args(self.engine.url)
        options = postgres_connect_args(self.engine.url.render_as_string(hide_password=False))
        server_settings = {**options.get("server_settings", {}), "application_name": APPLICATION_NAME}
        options["server_settings"] = server_settings
        return await asyncpg.connect(**params, **options, timeout=10.0)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith(PING_PREFIX):
            if payload == self._nonce:
                self._pong.set()  # another worker's ping changes nothing
            return
        # A change to `tokens` or `tenants` (the payload names the table), or a writer's barrier,
        # which empties the cache too: a barrier is only sent after such a change.
        self.cache.invalidate()
        if payload.startswith(BARRIER_PREFIX) and self._conn is not None:
            task = asyncio.get_running_loop().create_task(self._acknowledge(self._conn, payload))
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)

    async def _acknowledge(self, conn: asyncpg.Connection, payload: str) -> None:
        with contextlib.suppress(Exception):  # a lost connection: the writer's timeout covers it
            async with self._sending:
                await conn.execute("SELECT pg_notify($1, $2)", ACK_CHANNEL, payload, timeout=PING_SECONDS)


#: The listening connections of this database, as the barrier must count them.
_LISTENERS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1"


async def await_invalidation(engine: AsyncEngine) -> None:
    """Return once every worker's token cache has dropped what a just-committed change made stale.

    PostgreSQL: waits at most `BARRIER_TIMEOUT_SECONDS`. SQLite: rewrites the signal file, which
    every worker reads before answering from its cache; when that fails, waits until every cache
    has lapsed (`SIGNAL_TTL_SECONDS`).
    """
    signals = backend(engine).token_signal
    if signals is not None:
        if not signals.announce(engine):
            await asyncio.sleep(SIGNAL_FAILED_WAIT_SECONDS)
        return
    if not backend(engine).listen_notify or behind_pgbouncer(engine):
        return  # behind PgBouncer no cache is on, and a LISTEN for the acknowledgements cannot work
    nonce = f"{BARRIER_PREFIX}{uuid.uuid4().hex}"
    acked: set[int] = set()
    arrived = asyncio.Event()

    def on_ack(_conn: Any, pid: int, _channel: str, payload: str) -> None:
        if payload == nonce:
            acked.add(pid)
            arrived.set()

    async with engine.connect() as sa_conn:
        raw = await sa_conn.get_raw_connection()
        conn: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]
        await conn.add_listener(ACK_CHANNEL, on_ack)
        try:
            rows = await conn.fetch(_LISTENERS, APPLICATION_NAME)
            waiting = {int(row["pid"]) for row in rows}
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, nonce)
            deadline = time.monotonic() + BARRIER_TIMEOUT_SECONDS
            while not waiting <= acked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "%d token cache listener(s) did not acknowledge a change; their caches have lapsed",
                        len(waiting - acked),
                    )
                    return
                arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(arrived.wait(), timeout=remaining)
        finally:
            await conn.remove_listener(ACK_CHANNEL, on_ack)


@asynccontextmanager
async def auth_write(engine: AsyncEngine) -> AsyncIterator[Any]:
    """`write_transaction` for changes to tokens or tenants: when it returns, no worker still
    accepts what the change revoked (see the module docstring)."""
    async with write_transaction(engine) as conn:
        yield conn
    await await_invalidation(engine)
