"""`provisor serve --workers N`: N uvicorn workers, each with its own listening socket.

uvicorn's own multi-worker mode shares one listening socket, and the worker that wakes first
accepts a whole burst of new connections. An IdP opens a handful of connections, so one worker
often got nearly all of them and the other idled: the bench's throughput swung between about half
and all of the machine from one run to the next. With SO_REUSEPORT each worker binds the port
itself and the kernel spreads new connections across the workers' sockets.

The parent only supervises: it restarts a worker that dies, and on SIGINT/SIGTERM passes the
signal on (uvicorn then shuts each worker down gracefully) and waits for them. A worker dies with
its parent (`_die_with_parent`): orphans would keep serving on the port beside the next server.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from provisor.telemetry.multiproc import worker_died

log = logging.getLogger("provisor")

#: Seconds a worker gets to finish its requests after SIGTERM before it is killed.
GRACE_SECONDS = 30.0


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int, *, reuse_port: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def check_port_free(host: str, port: int) -> None:
    """Raise OSError(EADDRINUSE) naming the address when another process listens there.

    Without SO_REUSEPORT on this probe: another server that listens with it (say a second
    `provisor serve`) must not be joined silently.
    """
    try:
        listening_socket(host, port, reuse_port=False).close()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OSError(exc.errno, f"port {port} on {host} is already in use") from None
        raise


#: prctl(2)'s option that has the kernel signal a process when its parent thread dies.
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this worker when the supervisor dies, however it dies.

    A supervisor killed with -9 (the OOM killer, an operator) cannot pass anything on, and its
    workers kept serving the port (SO_REUSEPORT) beside the next server started there, with the
    old code and configuration. SIGKILL, as for the supervisor itself: a write in flight may or may
    not commit, its client got no answer (docs/operations.md, "The server's own processes fail").
    Linux only; elsewhere the orphans' fate is the system's.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("cannot tie this worker to its supervisor: %s", os.strerror(ctypes.get_errno()))
        return
    if os.getppid() != parent:  # the supervisor died before the request was made
        os._exit(1)


class _WorkerServer(uvicorn.Server):
    """uvicorn's server, except that a stop signal before start-up has finished ends the worker at
    once. uvicorn would finish starting first, and a worker waiting for the database at start-up
    (service/database.py `prepare_when_reachable`) would wait out the outage, or the supervisor's
    grace period, with nothing in flight to finish."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.started:
            os._exit(0)
        super().handle_exit(sig, frame)


def _worker(config: uvicorn.Config, parent: int) -> None:
    _die_with_parent(parent)
    config.configure_logging()  # the unpickled config has not run its __init__ in this process
    sock = listening_socket(config.host, config.port)
    _WorkerServer(config).run(sockets=[sock])


def run_workers(config: uvicorn.Config, workers: int) -> None:
    """Run `workers` processes serving `config` on one port; return when they have all stopped."""
    check_port_free(config.host, config.port)  # fail fast, in this process, if the port is taken
    context = multiprocessing.get_context("spawn")
    stopping: list[int] = []

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(config, os.getpid()), name="provisor-worker")
        process.start()
        return process

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    processes = [start() for _ in range(workers)]
    log.info("started %d workers (SO_REUSEPORT) on %s:%d", workers, config.host, config.port)
    while not stopping:
        time.sleep(0.25)
        for i, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                log.warning("worker %s exited with %s; starting another", process.pid, process.exitcode)
                worker_died(process.pid)
                processes[i] = start()
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn finishes in-flight requests, then exits
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
