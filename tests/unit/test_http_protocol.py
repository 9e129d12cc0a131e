"""http/protocol.py: a response's head and body leave in one write, and nothing is lost or held."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from provisor.http.protocol import HOLD_BYTES, CoalescingHttpToolsProtocol, _CoalescingTransport


class _Recorder:
    """A transport that records what reaches it (stands in for the socket)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.events: list[str] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.events.append("close")

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def _pass() -> None:
    await asyncio.sleep(0)


def test_writes_of_one_pass_leave_as_one() -> None:
    async def run() -> _Recorder:
        recorder = _Recorder()
        transport = _CoalescingTransport(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"")
        transport.write(b"body")
        assert recorder.writes == []  # held until the end of this pass
        await _pass()
        transport.write(b"next")
        await _pass()
        return recorder

    assert asyncio.run(run()).writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_close_sends_what_is_held_first() -> None:
    async def run() -> _Recorder:
        recorder = _Recorder()
        transport = _CoalescingTransport(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"head")
        transport.write(b"body")
        transport.close()
        await _pass()
        return recorder

    recorder = asyncio.run(run())
    assert recorder.writes == [b"headbody"]
    assert recorder.events == ["write", "close"]


def test_a_large_body_is_not_held() -> None:
    async def run() -> tuple[_Recorder, int]:
        recorder = _Recorder()
        transport = _CoalescingTransport(recorder, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"head")
        transport.write(b"x" * HOLD_BYTES)
        sent_at_once = len(recorder.writes)
        transport.write(b"tail")
        assert transport.get_write_buffer_size() == 4
        await _pass()
        return recorder, sent_at_once

    recorder, sent_at_once = asyncio.run(run())
    assert sent_at_once == 1
    assert recorder.writes == [b"head" + b"x" * HOLD_BYTES, b"tail"]


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"chunk%d;" % i, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = scope["path"].encode()
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def test_served_by_uvicorn_keep_alive_and_streaming() -> None:
    """Through a real uvicorn server: keep-alive requests in a row, a streamed (chunked) body, and
    a response whose head and body arrive in one segment."""

    async def run() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(_app, http=CoalescingHttpToolsProtocol, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                for i in range(5):
                    response = await client.get(f"/item/{i}")
                    assert response.status_code == 200
                    assert response.text == f"/item/{i}"
                streamed = await client.get("/stream")
                assert streamed.text == "chunk0;chunk1;chunk2;"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /one HTTP/1.1\r\nhost: x\r\n\r\n")
            first = await reader.read(65536)  # one segment: the head and the body together
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            assert first.endswith(b"\r\n\r\n/one")
            writer.close()
        finally:
            server.should_exit = True
            await task

    asyncio.run(run())
