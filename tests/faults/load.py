"""A closed-loop HTTP/1.1 load generator that records every answer's status and latency.

wrk reports one latency histogram for all answers; the overload test needs the 2xx answers'
latencies apart from the 503s', and each 503's `Retry-After`. This client keeps `connections`
keep-alive connections, each sending its next GET the moment the previous answer has arrived
(like wrk, it does not honour `Retry-After`: the worst case for the server). It runs on uvloop with
asyncio protocols and parses only the status line and `Content-Length`, so at the few thousand
requests a second a 2-worker server manages it uses a small part of one core.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import uvloop


@dataclass
class Answers:
    """What one run saw: per status, the latencies (seconds) of answers completed in the window."""

    seconds: float
    latencies: dict[int, list[float]] = field(default_factory=dict)
    #: 503 answers without `Retry-After`, and connections the server dropped.
    missing_retry_after: int = 0
    dropped: int = 0

    def total(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def count(self, status: int) -> int:
        return len(self.latencies.get(status, ()))

    def of(self, *statuses: int) -> list[float]:
        return [x for s in statuses for x in self.latencies.get(s, ())]

    def everything(self) -> list[float]:
        return [x for v in self.latencies.values() for x in v]

    def rate(self, *statuses: int) -> float:
        return sum(self.count(s) for s in statuses) / self.seconds


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1) of `values`; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(share * len(ordered) + 0.999999) - 1))
    return ordered[rank]


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.WriteTransport, transport)  # uvloop's is not a subclass
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.run.next_request())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = 0
            retry_after: float | None = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lowered = name.strip().lower()
                if lowered == "content-length":
                    length = int(value)
                elif lowered == "retry-after":
                    retry_after = float(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.run.record(status, time.perf_counter() - self.sent_at, retry_after)
            if self.run.running:
                if self.run.honour_retry_after and retry_after:
                    asyncio.get_running_loop().call_later(retry_after, self.resume)
                else:
                    self.send()
            else:
                assert self.transport is not None
                self.transport.close()
                return

    def resume(self) -> None:
        if self.run.running:
            self.send()
        elif self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.run.running:
            self.run.answers.dropped += 1
        if not self.lost.done():
            self.lost.set_result(None)


class _Run:
    def __init__(self, host: str, paths: Sequence[str], token: str, honour_retry_after: bool) -> None:
        self.honour_retry_after = honour_retry_after
        self.host = host
        self.paths = paths
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.running = True
        self.measuring = False
        self.answers = Answers(0.0)

    def next_request(self) -> bytes:
        path = random.choice(self.paths)
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: application/scim+json\r\n".encode()
            + self.auth
            + b"\r\n"
        )

    def record(self, status: int, latency: float, retry_after: float | None) -> None:
        if not self.measuring:
            return
        self.answers.latencies.setdefault(status, []).append(latency)
        if status == 503 and retry_after is None:
            self.answers.missing_retry_after += 1


async def _drive(
    host: str,
    port: int,
    paths: Sequence[str],
    token: str,
    connections: int,
    seconds: float,
    warmup: float,
    honour_retry_after: bool,
) -> Answers:
    loop = asyncio.get_running_loop()
    run = _Run(f"{host}:{port}", paths, token, honour_retry_after)
    made = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _Connection(run), host, port)
        made.append(protocol)
    await asyncio.sleep(warmup)
    run.measuring = True
    began = time.perf_counter()
    await asyncio.sleep(seconds)
    run.measuring = False
    run.answers.seconds = time.perf_counter() - began
    run.running = False
    await asyncio.wait([p.lost for p in made], timeout=30)
    for protocol in made:
        if protocol.transport is not None:
            protocol.transport.abort()
    return run.answers


def drive(
    host: str,
    port: int,
    paths: Sequence[str],
    token: str,
    *,
    connections: int,
    seconds: float,
    warmup: float = 1.0,
    honour_retry_after: bool = True,
) -> Answers:
    """`connections` closed-loop connections GETting random `paths` for `seconds` (after `warmup`)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_drive(host, port, paths, token, connections, seconds, warmup, honour_retry_after))
