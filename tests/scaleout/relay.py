"""A TCP relay in a thread: the machine's PostgreSQL listens on 127.0.0.1 only, so the hosts in
network namespaces reach it through this relay on the bridge address; and the embedded test server
listens on a Unix socket only, so the tests reach it over TCP (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class Relay:
    """Relays connections to `listen`:`port` to `target` (host and port, or a Unix socket's path),
    from a thread of its own until `stop`."""

    def __init__(self, listen: str, target: tuple[str, int] | str) -> None:
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        box: dict[str, asyncio.AbstractServer] = {}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if isinstance(target, str):
                    up_reader, up_writer = await asyncio.open_unix_connection(target)
                else:
                    up_reader, up_writer = await asyncio.open_connection(*target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        async def start() -> None:
            box["server"] = await asyncio.start_server(handle, listen, 0)
            started.set()

        def run() -> None:
            self._loop.run_until_complete(start())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"the relay could not listen on {listen}")
        self._server = box["server"]
        self.port: int = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def stop() -> None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def relay(listen: str, target: tuple[str, int] | str) -> Iterator[int]:
    """A `Relay` for the block; yields its port."""
    running = Relay(listen, target)
    try:
        yield running.port
    finally:
        running.stop()
