"""A small HTTP/1.1 keep-alive client for the bench's multi-step flows.

The load generator must not be the bottleneck. httpx spends about 1.3 ms of CPU per request
(measured: 5.45 s of CPU for the 4,022 requests of a 2,000-user initial sync), so on a 2-core
machine the driver alone took most of a core from the servers it measured. This client does only
what the flows need — keep-alive connections, JSON bodies, Content-Length or chunked responses —
and costs a fraction of that.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson


class HttpError(Exception):
    pass


class Response:
    __slots__ = ("body", "status_code")

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body

    @property
    def content(self) -> bytes:
        return self.body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.body)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, head: bytes, body: bytes) -> tuple[Response, bool]:
        self.writer.write(head + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = False
        keep = True
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                keep = False
        if status in (204, 304):  # no body, whatever the headers say
            payload = b""
        elif chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            payload = b"".join(parts)
        elif length is not None:
            payload = await self.reader.readexactly(length)
        else:
            payload = await self.reader.read()
            keep = False
        return Response(status, payload), keep

    def close(self) -> None:
        self.writer.close()


class Client:
    """`async with Client(base, headers) as c: await c.get(path, params=...)`; at most
    `max_connections` requests in flight (more callers wait for a free connection)."""

    def __init__(
        self, base: str, headers: dict[str, str], *, max_connections: int = 16, timeout: float = 60.0
    ) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        fixed = {"Host": f"{self.host}:{self.port}", "Accept": "application/scim+json", **headers}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> Response:
        target = self.prefix + path + ("?" + urlencode(params) if params else "")
        body = b"" if json is None else orjson.dumps(json)
        head = f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + self._fixed
        head += f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1")
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                conn = _Connection(reader, writer)
            try:
                response, keep = await asyncio.wait_for(conn.exchange(head, body), self.timeout)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                conn.close()
                raise HttpError(f"{method} {target}: {exc!r}") from exc
            if keep:
                self._idle.append(conn)
            else:
                conn.close()
            return response

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Response:
        return await self.request("POST", path, **kw)
