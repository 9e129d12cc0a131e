"""The per-worker token cache (storage/auth_cache.py): fewer lookups, and no stale answers.

Each test runs its own app, so that its cache and listener start empty. A change is always made
through a separate engine (as the CLI, the admin API of another worker, or another host would), and
the very next request must see it; each is repeated to give a race a chance to show. Changes are
made as Provisor's own writers make them (`auth_write`): on SQLite that is what rewrites the signal
file; a change made behind Provisor's back is seen within `SIGNAL_TTL_SECONDS` there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.container import Provisor
from provisor.http.app import create_app
from provisor.storage import tokens as token_store
from provisor.storage.auth_cache import (
    APPLICATION_NAME,
    PING_SECONDS,
    SIGNAL_TTL_SECONDS,
    AuthCache,
    AuthListener,
    auth_write,
)
from provisor.storage.engine import create_engine
from provisor.storage.tables import tenants, tokens
from provisor.storage.tokens import revoke, touch
from provisor.storage.transactions import write_transaction
from tests.scim_client import (
    assert_error,
    changed_elsewhere,
    mint_token,
    run_db,
    set_tenant_settings,
    wait_for,
)

ROUNDS = 5


@pytest.fixture
def app(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=database_url, webhooks_enabled=False))) as client:
        yield client


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the token lookups that reach the database (the real function still runs)."""
    seen: list[str] = []
    real = token_store.find_active

    async def counted(engine: AsyncEngine, secret: str, at: str) -> Any:
        seen.append(secret)
        return await real(engine, secret, at)

    monkeypatch.setattr(token_store, "find_active", counted)
    return seen


def provisor_of(client: TestClient) -> Provisor:
    provisor: Provisor = client.app.state.provisor  # type: ignore[attr-defined]
    return provisor


def get_users(client: TestClient, token: str) -> Any:
    return client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token}"})


def change(url: str, *statements: Any, announced: bool = True) -> None:
    """Run `statements` in one transaction, as Provisor's writers do (`auth_write`), or behind
    their back (`announced=False`: no signal, no barrier)."""

    async def work(engine: AsyncEngine) -> None:
        async with (auth_write if announced else write_transaction)(engine) as conn:
            for statement in statements:
                await conn.execute(statement)

    run_db(url, work)


def test_a_known_token_is_answered_from_memory(
    app: TestClient, database_url: str, tenant_id: str, lookups: list[str]
) -> None:
    token = mint_token(database_url, tenant_id)
    for _ in range(5):
        assert get_users(app, token).status_code == 200
    cache = provisor_of(app).auth.cache
    assert lookups == [token] and cache.enabled and len(cache) == 1
    assert (cache.signal is not None) == database_url.startswith("sqlite")
    for _ in range(3):  # unknown secrets are looked up every time and never kept
        assert_error(get_users(app, "prv_not-a-token"), 401)
    assert lookups.count("prv_not-a-token") == 3 and len(cache) == 1


def _revoked(url: str, tenant_id: str) -> list[Any]:
    return [update(tokens).where(tokens.c.tenant_id == tenant_id).values(revoked_at="2000-01-01T00:00:00Z")]


def _expired(url: str, tenant_id: str) -> list[Any]:
    return [update(tokens).where(tokens.c.tenant_id == tenant_id).values(expires_at="2000-01-01T00:00:00Z")]


def _token_deleted(url: str, tenant_id: str) -> list[Any]:
    return [delete(tokens).where(tokens.c.tenant_id == tenant_id)]


def _tenant_deleted(url: str, tenant_id: str) -> list[Any]:
    return [
        delete(tokens).where(tokens.c.tenant_id == tenant_id),
        delete(tenants).where(tenants.c.id == tenant_id),
    ]


@pytest.mark.parametrize("make_change", [_revoked, _expired, _token_deleted, _tenant_deleted])
def test_a_change_made_elsewhere_holds_once_the_worker_hears_of_it(
    app: TestClient, database_url: str, make_change: Callable[[str, str], list[Any]]
) -> None:
    for n in range(ROUNDS):
        tenant_id = f"t-cache-{make_change.__name__}-{n}-{time.monotonic_ns()}"
        token = mint_token(database_url, tenant_id)
        assert get_users(app, token).status_code == 200
        assert get_users(app, token).status_code == 200  # answered from the cache on PostgreSQL
        changed_elsewhere(app, partial(change, database_url, *make_change(database_url, tenant_id)))
        assert_error(get_users(app, token), 401)


def test_a_tenant_setting_changed_elsewhere_holds_once_the_worker_hears_of_it(
    app: TestClient, database_url: str
) -> None:
    for n in range(ROUNDS):
        tenant_id = f"t-cache-limit-{n}-{time.monotonic_ns()}"
        token = mint_token(database_url, tenant_id)
        assert get_users(app, token).status_code == 200  # cached with no rate limit
        changed_elsewhere(
            app,
            partial(
                set_tenant_settings, database_url, tenant_id, rate_limit_per_second=0.01, rate_limit_burst=1
            ),
        )
        assert get_users(app, token).status_code == 200  # the one request the new burst allows
        assert_error(get_users(app, token), 429)


def test_the_revoke_command_holds_once_the_worker_hears_of_it(
    app: TestClient, database_url: str, tenant_id: str
) -> None:
    async def revoke_all(engine: AsyncEngine) -> None:
        async with auth_write(engine) as conn:  # as `provisor token revoke` does
            ids = (await conn.execute(text("SELECT id FROM tokens WHERE name = 'to-revoke'"))).scalars().all()
            for token_id in ids:
                await revoke(conn, token_id)

    for _ in range(ROUNDS):
        token = mint_token(database_url, tenant_id, name="to-revoke")
        assert get_users(app, token).status_code == 200
        changed_elsewhere(app, lambda: run_db(database_url, revoke_all))
        assert_error(get_users(app, token), 401)


def test_a_token_expiring_while_cached_stops_at_its_expiry(
    app: TestClient, database_url: str, tenant_id: str, lookups: list[str]
) -> None:
    token = mint_token(database_url, tenant_id)
    expiry = datetime.now(UTC) + timedelta(seconds=1.5)
    change(
        database_url,
        update(tokens)
        .where(tokens.c.tenant_id == tenant_id)
        .values(expires_at=expiry.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    )
    assert get_users(app, token).status_code == 200
    assert get_users(app, token).status_code == 200
    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 0.05)
    assert_error(get_users(app, token), 401)  # nothing changed in the database: the cached expiry holds


def test_touching_last_used_does_not_empty_the_cache(
    app: TestClient, database_url: str, tenant_id: str, lookups: list[str]
) -> None:
    token = mint_token(database_url, tenant_id)
    assert get_users(app, token).status_code == 200

    async def touch_all(engine: AsyncEngine) -> None:
        async with write_transaction(engine) as conn:
            ids = (
                await conn.execute(text("SELECT id FROM tokens WHERE tenant_id = :t"), {"t": tenant_id})
            ).scalars()
            for token_id in ids:
                await touch(conn, token_id, "2026-01-01T00:00:00.000000Z")

    run_db(database_url, touch_all)
    time.sleep(0.2)  # a notification, had one been sent, would have arrived by now
    assert get_users(app, token).status_code == 200
    assert len(lookups) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_lost_listener_turns_the_cache_off_until_it_listens_again(
    app: TestClient, database_url: str, tenant_id: str, lookups: list[str]
) -> None:
    provisor = provisor_of(app)
    cache = provisor.auth.cache
    assert provisor.auth_listener is not None
    provisor.auth_listener.retry_seconds = 3.0  # long enough to act while it is off
    token = mint_token(database_url, tenant_id)
    assert get_users(app, token).status_code == 200
    assert cache.enabled and len(cache) == 1

    async def terminate(engine: AsyncEngine) -> int:
        async with write_transaction(engine) as conn:
            return len(
                (
                    await conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :name AND datname = current_database()"
                        ),
                        {"name": APPLICATION_NAME},
                    )
                ).all()
            )

    assert run_db(database_url, terminate) >= 1
    wait_for(lambda: not cache.enabled)
    assert len(cache) == 0
    # Revoked while nobody listens: no notification reaches this worker, yet the token must stop.
    change(database_url, *_revoked(database_url, tenant_id))
    assert_error(get_users(app, token), 401)
    wait_for(lambda: cache.enabled, timeout=15.0)
    fresh = mint_token(database_url, tenant_id, name="after")
    before = len(lookups)
    assert get_users(app, fresh).status_code == 200
    assert get_users(app, fresh).status_code == 200
    assert len(lookups) == before + 1  # cached again


def test_the_cache_keeps_only_current_answers() -> None:
    cache: AuthCache[str] = AuthCache(max_entries=2)
    cache.put("a", "A", cache.generation)
    assert cache.get("a") is None  # off until a listener switches it on
    cache.switch(True)
    cache.renew(60)
    seen = cache.generation
    cache.invalidate()  # a change arrives while a lookup that began earlier is in flight
    cache.put("a", "stale", seen)
    assert cache.get("a") is None
    cache.put("a", "A", cache.generation)
    cache.put("b", "B", cache.generation)
    cache.put("c", "C", cache.generation)  # full: the oldest goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, "B", "C")
    cache.renew(0.05)
    time.sleep(0.1)  # the listener has not proven its connection alive since
    assert cache.get("b") is None
    cache.renew(60)
    assert cache.get("b") == "B"
    cache.switch(False)
    assert cache.get("b") is None and len(cache) == 0
    assert PING_SECONDS * 2 < 10  # a dead connection is noticed within seconds, not minutes


def test_the_cache_can_be_turned_off(database_url: str, tenant_id: str, lookups: list[str]) -> None:
    settings = Settings(database_url=database_url, webhooks_enabled=False, token_cache=False)
    with TestClient(create_app(settings)) as client:
        token = mint_token(database_url, tenant_id)
        for _ in range(3):
            assert get_users(client, token).status_code == 200
        assert lookups == [token] * 3 and provisor_of(client).auth_listener is None


def test_pings_prove_the_path_without_emptying_any_cache(
    app: TestClient, database_url: str, tenant_id: str, lookups: list[str]
) -> None:
    token = mint_token(database_url, tenant_id)
    assert get_users(app, token).status_code == 200
    with TestClient(create_app(Settings(database_url=database_url, webhooks_enabled=False))):
        time.sleep(2.5 * PING_SECONDS)  # both listeners pinged at least twice meanwhile
    assert get_users(app, token).status_code == 200
    # SQLite's cache lapsed meanwhile (SIGNAL_TTL_SECONDS): one more lookup, nothing else.
    assert len(lookups) == (1 if database_url.startswith("postgresql") else 2)


class _Deaf(AuthListener):
    """Notifications never come back, as behind a pooler that ran LISTEN on another connection."""

    def _on_notify(self, *_: Any) -> None:
        return None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_cache_stays_off_until_a_ping_comes_back(database_url: str) -> None:
    async def main() -> tuple[bool, bool, bool]:
        engine = create_engine(database_url)
        deaf_cache: AuthCache[str] = AuthCache()
        heard_cache: AuthCache[str] = AuthCache()
        deaf, heard = _Deaf(engine, deaf_cache), AuthListener(engine, heard_cache)
        try:
            await deaf.start()
            await heard.start()
            await asyncio.sleep(2.5 * PING_SECONDS)
            return deaf_cache.enabled, heard_cache.enabled, heard_cache.valid_until > time.monotonic()
        finally:
            await deaf.stop()
            await heard.stop()
            await engine.dispose()

    assert asyncio.run(main()) == (False, True, True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("make_change", [_revoked, _tenant_deleted])
def test_sqlite_a_change_behind_provisors_back_holds_within_the_caches_lifetime(
    app: TestClient, database_url: str, make_change: Callable[[str, str], list[Any]]
) -> None:
    """No signal (another tool wrote, or the writer died between its commit and its signal): the
    cache still lapses every `SIGNAL_TTL_SECONDS`."""
    tenant_id = f"t-cache-quiet-{make_change.__name__}-{time.monotonic_ns()}"
    token = mint_token(database_url, tenant_id)
    assert get_users(app, token).status_code == 200
    change(database_url, *make_change(database_url, tenant_id), announced=False)
    began = time.monotonic()
    while get_users(app, token).status_code == 200:
        assert time.monotonic() - began < SIGNAL_TTL_SECONDS + 0.5
        time.sleep(0.02)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_a_deleted_signal_file_is_found_again(
    app: TestClient, database_url: str, tenant_id: str
) -> None:
    """Deleted while the server runs: the next writer makes a new one, which the worker opens when
    its cache lapses; until then changes are seen within the cache's lifetime, as above."""
    signal = provisor_of(app).auth.cache.signal
    assert signal is not None
    path = signal.path  # type: ignore[attr-defined]
    token = mint_token(database_url, tenant_id)
    assert get_users(app, token).status_code == 200
    os.unlink(path)
    time.sleep(SIGNAL_TTL_SECONDS + 0.1)
    assert get_users(app, token).status_code == 200  # lapsed: looked up again, the file reopened
    for round_ in range(ROUNDS):
        fresh = mint_token(database_url, tenant_id, name=f"after-delete-{round_}")
        assert get_users(app, fresh).status_code == 200
        assert get_users(app, fresh).status_code == 200  # from memory
        change(
            database_url,
            update(tokens).where(tokens.c.name == f"after-delete-{round_}").values(revoked_at="x"),
        )
        assert_error(get_users(app, fresh), 401)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_the_cache_is_off_without_a_signal_file(
    database_url: str, tenant_id: str, lookups: list[str]
) -> None:
    """A directory the server cannot write, and no signal file in it: every request reads the database."""
    path = database_url.removeprefix("sqlite:///") + ".auth-signal"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.mkdir(path)  # stands in for a file that can be neither created nor opened
    try:
        with TestClient(create_app(Settings(database_url=database_url, webhooks_enabled=False))) as client:
            token = mint_token(database_url, tenant_id)
            for _ in range(3):
                assert get_users(client, token).status_code == 200
            assert lookups == [token] * 3 and not provisor_of(client).auth.cache.enabled
    finally:
        os.rmdir(path)


def test_a_lookup_that_a_signal_overtook_is_not_kept() -> None:
    class Signal:
        def __init__(self) -> None:
            self.pending = False

        def changed(self) -> bool:
            pending, self.pending = self.pending, False
            return pending

        def recheck(self) -> None:
            return None

        def close(self) -> None:
            return None

    signal = Signal()
    cache: AuthCache[str] = AuthCache()
    cache.follow(signal)
    assert cache.get("a") is None
    seen = cache.generation
    signal.pending = True  # a writer announced a change while the lookup read the database
    cache.put("a", "stale", seen)
    assert cache.get("a") is None
    cache.put("a", "A", cache.generation)
    assert cache.get("a") == "A"
    signal.pending = True
    assert cache.get("a") is None
    cache.put("a", "A", cache.generation)
    cache.valid_until = 0.0  # lapsed
    assert cache.get("a") is None
