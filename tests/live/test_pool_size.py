"""`PROVISOR_DATABASE_POOL_SIZE`: how many PostgreSQL connections one worker may open.

An operator sizes `max_connections` as hosts x workers x (pool + half of it for bursts + 1 for
the token cache); a pool that ignored the setting would take connections the database refuses
("too many clients"), and a burst would then be answered 503. A burst of rate-limited requests
(each takes its tenant's bucket in a transaction of its own) at a worker with no in-flight cap is
the shape that opens the most connections at once.
"""

from __future__ import annotations

import asyncio
import threading

import asyncpg
import httpx
import pytest

from tests.live.server import live_server
from tests.scim_client import set_tenant_settings

#: The pool asked for, and what one worker may then hold: the pool, half of it again for bursts,
#: and the token cache's listening connection.
POOL = 2
CEILING = POOL + POOL // 2 + 1

_CLIENTS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)


class PeakConnections:
    """The most client connections seen on one database, polled from a thread of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._poll()), daemon=True)

    async def _poll(self) -> None:
        connection = await asyncpg.connect(self.url)
        try:
            while not self._stop.is_set():
                self.peak = max(self.peak, await connection.fetchval(_CLIENTS))
                await asyncio.sleep(0.002)
        finally:
            await connection.close()

    def __enter__(self) -> PeakConnections:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


async def _burst(base: str, headers: dict[str, str]) -> list[int]:
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        user = "urn:ietf:params:scim:schemas:core:2.0:User"
        creates = (client.post("/Users", json={"schemas": [user], "userName": f"p{i}"}) for i in range(40))
        reads = (client.get("/Users", params={"filter": f'userName eq "p{i}"'}) for i in range(40))
        responses = await asyncio.gather(*creates, *reads)
    return [r.status_code for r in responses]


@pytest.mark.slow
def test_a_worker_stays_within_its_pool(fresh_database_url: str, tenant_id: str) -> None:
    set_tenant_settings(fresh_database_url, tenant_id, rate_limit_per_second=10_000, rate_limit_burst=10_000)
    env = {"PROVISOR_DATABASE_POOL_SIZE": str(POOL), "PROVISOR_MAX_INFLIGHT": "0"}
    with live_server(fresh_database_url, tenant_id, workers=1, env=env) as server:
        if fresh_database_url.startswith("postgresql"):
            with PeakConnections(fresh_database_url) as connections:
                statuses = asyncio.run(_burst(server.base_url, server.headers))
            assert connections.peak <= CEILING, connections.peak
        else:  # SQLite has no pool to size; the setting is accepted and changes nothing
            statuses = asyncio.run(_burst(server.base_url, server.headers))
    assert sorted(set(statuses)) == [200, 201], statuses
    assert statuses.count(201) == 40
