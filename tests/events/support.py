"""Helpers for the event tests: tokens, a running app, and a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app
from provisor.storage.event_log import latest_seq
from provisor.storage.transactions import read_transaction
from tests.scim_client import mint_token, run_db

T = TypeVar("T")


def mint(url: str, tenant: str | None, kind: str = "scim") -> str:
    return mint_token(url, tenant, kind=kind)


def head(url: str) -> int:
    async def work(engine: Any) -> int:
        async with read_transaction(engine) as conn:
            return await latest_seq(conn)

    result: int = run_db(url, work)
    return result


@contextmanager
def client(url: str, **settings: Any) -> Iterator[TestClient]:
    hooks = settings.pop("hooks", None)
    settings.setdefault("webhooks_enabled", False)
    app = create_app(Settings(database_url=url, **settings), hooks=hooks)
    with TestClient(app) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def eventually(check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


@dataclass
class Receiver:
    """Records every POST; answers with the next scripted status (then 200)."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                status = state.script.pop(0) if state.script else 200
                if status < 300:
                    state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
