"""Prometheus metrics, one set per process, summed over all workers at scrape time.

`provisor serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before any worker starts
(telemetry/multiproc.py); each worker's counters then live in memory-mapped files there, and a scrape
answered by any worker reads them all. Without that variable (an embedded app, the tests' in-process
app) the values live in this process and a scrape reports this process alone.

The request counters are updated once per response, from the envelope (http/middleware.py), through
labelled children looked up in a dict: every label value comes from a bounded set (methods,
route templates, status codes), so the dict stays small. No metric has a tenant label.
"""

from __future__ import annotations

import asyncio
import os
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: `*_created` series say when a counter was made; multiprocess mode has none, so neither do we.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Where this process's metrics are registered when they are not shared through files.
LOCAL = CollectorRegistry(auto_describe=False)

#: Request latencies span 100 µs (a cached GET) to the 30 s timeout.
_HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_DB_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

HTTP_REQUESTS = Counter(
    "provisor_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
    registry=LOCAL,
)
HTTP_DURATION = Histogram(
    "provisor_http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by method and route template.",
    ("method", "route"),
    buckets=_HTTP_BUCKETS,
    registry=LOCAL,
)
DB_STATEMENT = Histogram(
    "provisor_db_statement_duration_seconds",
    "Time of database statements run through SQLAlchemy's execution layer, by kind.",
    ("kind",),
    buckets=_DB_BUCKETS,
    registry=LOCAL,
)
WEBHOOK_DELIVERIES = Counter(
    "provisor_webhook_deliveries",
    "Webhook delivery attempts by result: delivered, retry (failed, will retry), dead (gave up).",
    ("result",),
    registry=LOCAL,
)
RATE_LIMITED = Counter(
    "provisor_rate_limit_refusals", "Requests refused with 429 by a tenant's rate limit.", registry=LOCAL
)
SHED = Counter(
    "provisor_http_shed_requests",
    "Requests answered 503 at once because their worker had PROVISOR_MAX_INFLIGHT in flight.",
    registry=LOCAL,
)
TOKEN_CACHE_HITS = Counter(
    "provisor_token_cache_hits", "Bearer tokens answered from the worker's cache.", registry=LOCAL
)
TOKEN_CACHE_MISSES = Counter(
    "provisor_token_cache_misses", "Bearer tokens looked up in the database.", registry=LOCAL
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts each response in plain Python numbers; `flush` hands them to prometheus-client.

    In multiprocess mode every prometheus-client update is a locked write to a memory-mapped file,
    and a request's three (count, histogram bucket, histogram sum) cost about 17 µs. Here a
    request costs a dict lookup and three additions; the worker flushes once a second (and before
    answering a scrape), so a scrape may be up to a second behind for the other workers.
    """

    __slots__ = ("_children", "_pending", "_shed", "_token_hits", "_token_misses")

    def __init__(self) -> None:
        #: key -> [count, sum of seconds, bucket counts...] since the last flush
        self._pending: dict[tuple[str, str, int], list[Any]] = {}
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._shed = 0
        self._token_hits = 0
        self._token_misses = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = [0, 0.0, [0] * (len(_HTTP_BUCKETS) + 1)]
        pending[0] += 1
        pending[1] += seconds
        pending[2][bisect_left(_HTTP_BUCKETS, seconds)] += 1

    def shed(self) -> None:
        """One request refused by admission control (http/admission.py)."""
        self._shed += 1

    def token_cache(self, hit: bool) -> None:
        """One bearer token looked up in the worker's cache (service/auth.py): found, or not."""
        if hit:
            self._token_hits += 1
        else:
            self._token_misses += 1

    def flush(self) -> None:
        if self._shed:
            shed, self._shed = self._shed, 0
            SHED.inc(shed)
        if self._token_hits:
            hits, self._token_hits = self._token_hits, 0
            TOKEN_CACHE_HITS.inc(hits)
        if self._token_misses:
            misses, self._token_misses = self._token_misses, 0
            TOKEN_CACHE_MISSES.inc(misses)
        pending, self._pending = self._pending, {}
        for key, (count, total, buckets) in pending.items():
            children = self._children.get(key)
            if children is None:
                method, route, status = key
                label = method if method in _METHODS else "OTHER"
                children = (
                    HTTP_REQUESTS.labels(label, route, str(status)),
                    HTTP_DURATION.labels(label, route),
                )
                self._children[key] = children
            counter, histogram = children
            counter.inc(count)
            # prometheus-client has no "observe n values at once"; its Histogram child keeps one
            # value per bucket (not cumulative) and the sum, which is what `observe` updates.
            histogram._sum.inc(total)
            for index, n in enumerate(buckets):
                if n:
                    histogram._buckets[index].inc(n)

    async def flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.flush()


_STATEMENT_KINDS = ("select", "insert", "update", "delete", "with")


def _statement_kind(statement: str) -> str:
    head = statement.lstrip()[:6].lower()
    for kind in _STATEMENT_KINDS:
        if head.startswith(kind):
            return kind
    return "other"


class StatementTimer:
    """Times every statement SQLAlchemy runs, by kind (an observer for storage/instrument.py).

    The hot reads and writes of storage/direct.py go to the driver directly and are not seen here.
    """

    def __init__(self) -> None:
        self._children: dict[str, Any] = {}

    def started(self, statement: str, system: str) -> float:
        return time.perf_counter()

    def ended(self, began: float, statement: str) -> None:
        kind = _statement_kind(statement)
        child = self._children.get(kind)
        if child is None:
            child = self._children[kind] = DB_STATEMENT.labels(kind)
        child.observe(time.perf_counter() - began)

    def failed(self, began: float, error: BaseException) -> None:
        """A failed statement is not timed (as before: only completed ones are observed)."""


class _Snapshot(Collector):
    """Gauges computed at scrape time (from the database), added to whichever registry is scraped."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self.families


def outbox_families(newest_seq: int, slowest_position: int | None, dead: int) -> list[GaugeMetricFamily]:
    lag = 0 if slowest_position is None else max(0, newest_seq - slowest_position)
    return [
        GaugeMetricFamily("provisor_outbox_newest_seq", "Sequence number of the newest event.", newest_seq),
        GaugeMetricFamily(
            "provisor_outbox_lag_events",
            "Newest event seq minus the position of the slowest enabled webhook (0 without webhooks).",
            lag,
        ),
        GaugeMetricFamily(
            "provisor_webhook_dead_letters", "Webhook deliveries that gave up (state dead).", dead
        ),
    ]


def exposition(extra: list[GaugeMetricFamily]) -> bytes:
    """The Prometheus text for every worker (or this process alone), plus `extra`."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry = LOCAL
    text = generate_latest(registry)
    if extra:
        snapshot = CollectorRegistry(auto_describe=False)
        snapshot.register(_Snapshot(extra))
        text += generate_latest(snapshot)
    return text
