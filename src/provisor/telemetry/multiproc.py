"""The metrics directory of one `provisor serve --workers N` run (prometheus-client multiprocess mode).

Each worker writes its counters to memory-mapped files named after its pid in this directory; a
scrape by any worker sums them all. A fresh directory per start, so that a previous run's counts
never leak into this one; it is removed when the server stops. When a worker dies and is replaced,
`mark_process_dead` drops the dead worker's files for live gauges (counters and histograms keep
their totals, as Prometheus expects of counters).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from provisor.telemetry.metrics import MULTIPROC_ENV


@contextmanager
def metrics_directory() -> Iterator[str]:
    """Point `PROMETHEUS_MULTIPROC_DIR` at a new directory for the workers about to start."""
    directory = tempfile.mkdtemp(prefix="provisor-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def worker_died(pid: int | None) -> None:
    if pid is not None and os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
