"""`/metrics`: where it is served, who may read it, and the route templates it reports.

`PROVISOR_METRICS_ADDRESS` (Settings.metrics_address) chooses:
- `main` (default): `GET /metrics` on the API's own port, for admin tokens only;
- `HOST:PORT`: a separate listener on that address, without authentication (bind it to loopback
  or a private network), and no `/metrics` on the API's port. Every worker listens there with
  SO_REUSEPORT, and any of them answers for all;
- `off`: no endpoint and no request metrics at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from provisor.errors import ScimError
from provisor.http.responses import error_response
from provisor.service.webhooks import outbox_state
from provisor.telemetry.metrics import CONTENT_TYPE, exposition, outbox_families

if TYPE_CHECKING:
    from provisor.http.auth import Authenticator
    from provisor.service.database import Database
    from provisor.telemetry.metrics import RequestMetrics

#: Produces one exposition (the container binds it to its metrics and database).
Scrape = Callable[[], Awaitable[bytes]]

log = logging.getLogger("provisor.metrics")

MAIN = "main"
OFF = "off"
PATH = "/metrics"
UNMATCHED = "{unmatched}"
#: SCIM endpoints that are not resource types (http/scim.py).
FIXED_SCIM_ENDPOINTS = ("ServiceProviderConfig", "Schemas", "ResourceTypes", "Bulk", "Me", ".search")


def parse_address(value: str) -> tuple[str, int] | None:
    """`HOST:PORT` (IPv6 as `[::1]:9464`) -> (host, port); `main`/`off` -> None. Raises ValueError."""
    if value in (MAIN, OFF):
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"PROVISOR_METRICS_ADDRESS must be main, off or HOST:PORT, not {value!r}")
    return host, int(port)


class RouteTemplates:
    """The route a request matched, with ids replaced by `{id}`: a bounded set of label values.

    SCIM requests never reach Starlette's router (http/app.py `ScimRoute`), so their template comes
    from the endpoint segment, checked against the known resource types and discovery endpoints;
    other requests use the route Starlette matched.
    """

    def __init__(self, scim_prefix: str, endpoints: list[str]) -> None:
        self.prefix = scim_prefix + "/"
        names = [e.strip("/") for e in (*endpoints, *FIXED_SCIM_ENDPOINTS)]
        # Built once: per request the template is a lookup, not a string built anew.
        self.collections = {n.lower(): self.prefix + n for n in names}
        self.items = {n.lower(): self.prefix + n + "/{id}" for n in names}
        self.searches = {n.lower(): self.prefix + n + "/.search" for n in names}

    def of(self, scope: Scope, root: str) -> str:
        path: str = scope["path"]
        if root and path.startswith(root):
            path = path[len(root) :]
        if path.startswith(self.prefix):
            head, _, tail = path[len(self.prefix) :].partition("/")
            head = head.lower()
            if not tail:
                return self.collections.get(head, UNMATCHED)
            if "/" in tail:
                return UNMATCHED
            table = self.searches if tail.lower() == ".search" else self.items
            return table.get(head, UNMATCHED)
        route = scope.get("route")
        template = getattr(route, "path", None)
        if not isinstance(template, str):
            return UNMATCHED
        mount = scope.get("root_path", "")
        return (mount[len(root) :] if mount.startswith(root) else "") + template


async def scrape(request_metrics: RequestMetrics | None, database: Database) -> bytes:
    """The exposition: this process's (or every worker's) metrics and the outbox gauges."""
    if request_metrics is not None:
        request_metrics.flush()  # this worker's latest; the others flush every second
    extra = []
    try:
        state = await outbox_state(database)
        extra = outbox_families(state.newest_seq, state.slowest_position, state.dead)
    except Exception as exc:  # the process metrics are still worth answering with
        log.warning("metrics: cannot read the outbox state: %s", exc)
    return exposition(extra)


def metrics_endpoint(auth: Authenticator, scrape: Scrape) -> Any:
    """`GET /metrics` on the main port: admin tokens only."""

    async def endpoint(request: Request) -> Response:
        try:
            await auth.authenticate(request, "admin")
        except ScimError as error:
            return error_response(error, {"WWW-Authenticate": 'Bearer realm="provisor"'})
        return Response(await scrape(), media_type=CONTENT_TYPE)

    return endpoint


class MetricsListener:
    """A minimal HTTP/1.1 server answering `GET /metrics` on a separate address, in the worker's
    event loop. A scrape is one small request per connection, so nothing more is needed."""

    def __init__(self, scrape: Scrape, host: str, port: int) -> None:
        self.scrape = scrape
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # one per worker
        sock.bind((self.host, self.port))
        self._server = await asyncio.start_server(self._serve, sock=sock)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10.0)
            method, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
            target = rest.partition(b" ")[0].partition(b"?")[0]
            if target != PATH.encode():
                status, body, kind = b"404 Not Found", b"not found\n", b"text/plain"
            elif method not in (b"GET", b"HEAD"):
                status, body, kind = b"405 Method Not Allowed", b"GET only\n", b"text/plain"
            else:
                status, body, kind = b"200 OK", await self.scrape(), CONTENT_TYPE.encode()
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + kind
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + (b"" if method == b"HEAD" else body)
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
