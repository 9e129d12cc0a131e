"""Admission control (http/admission.py) at the ASGI level: who is counted, who is refused and how,
and that slots always come back. The load behaviour over real HTTP is tests/faults/test_overload.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from provisor.http.admission import AdmissionMiddleware
from provisor.telemetry.metrics import RequestMetrics


class _Held:
    """A downstream app whose requests stay in flight until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _scope(path: str, query: bytes = b"") -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": [],
    }


async def _call(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _status(sent: list[Message]) -> int:
    return int(sent[0]["status"])


def test_over_the_cap_is_refused_at_once_with_a_scim_503_and_retry_after() -> None:
    async def main() -> None:
        held = _Held()
        metrics = RequestMetrics()
        app = AdmissionMiddleware(held, limit=2, metrics=metrics)
        first = [asyncio.ensure_future(_call(app, _scope("/scim/v2/Users/x"))) for _ in range(2)]
        await asyncio.sleep(0.01)
        refused = await asyncio.wait_for(_call(app, _scope("/admin/v1/tenants")), 1)
        assert _status(refused) == 503
        headers = dict(refused[0]["headers"])
        assert headers[b"retry-after"] == b"1"
        assert headers[b"content-type"].startswith(b"application/scim+json")
        assert b"x-request-id" in headers and headers[b"x-content-type-options"] == b"nosniff"
        body = json.loads(refused[1]["body"])
        assert body["status"] == "503" and "nothing was written" in body["detail"]
        assert held.entered == 2 and metrics._shed == 1
        held.release.set()
        assert [_status(await f) for f in first] == [200, 200]
        assert app.in_flight == 0
        assert _status(await _call(app, _scope("/scim/v2/Users/x"))) == 200  # the slots came back

    asyncio.run(main())


def test_probes_metrics_other_paths_and_long_polls_are_never_counted_nor_refused() -> None:
    async def main() -> None:
        held = _Held()
        app = AdmissionMiddleware(held, limit=1)
        busy = asyncio.ensure_future(_call(app, _scope("/scim/v2/Users")))
        await asyncio.sleep(0.01)
        free = [
            _scope("/healthz"),
            _scope("/readyz"),
            _scope("/metrics"),
            _scope("/console/"),
            _scope("/admin/v1/events", b"after=0&wait=30"),
        ]
        calls = [asyncio.ensure_future(_call(app, s)) for s in free]
        await asyncio.sleep(0.01)
        assert held.entered == 1 + len(free) and app.in_flight == 1
        assert _status(await _call(app, _scope("/admin/v1/events", b"after=0"))) == 503  # no wait: capped
        held.release.set()
        assert {_status(await c) for c in [busy, *calls]} == {200}
        assert app.in_flight == 0

    asyncio.run(main())


def test_zero_turns_admission_control_off() -> None:
    async def main() -> None:
        held = _Held()
        app = AdmissionMiddleware(held, limit=0)
        calls = [asyncio.ensure_future(_call(app, _scope("/scim/v2/Users"))) for _ in range(50)]
        await asyncio.sleep(0.01)
        assert held.entered == 50
        held.release.set()
        assert {_status(await c) for c in calls} == {200}

    asyncio.run(main())
