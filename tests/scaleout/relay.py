"""A TCP relay in a thread: the machine's PostgreSQL listens on 127.0.0.1 only, so the hosts in
network namespaces reach it through this relay on the bridge address."""

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


@contextmanager
def relay(listen: str, target: tuple[str, int]) -> Iterator[int]:
    """Relay connections to `listen`:<port> to `target`; yields the port."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, asyncio.AbstractServer] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def start() -> None:
        box["server"] = await asyncio.start_server(handle, listen, 0)
        started.set()

    def run() -> None:
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError(f"the relay could not listen on {listen}")
    try:
        yield box["server"].sockets[0].getsockname()[1]
    finally:

        async def stop() -> None:
            box["server"].close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
