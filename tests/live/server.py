"""Start a real `provisor serve` process on a free port, for tests that need real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.scim_client import mint_token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(
    base: str, process: subprocess.Popen[bytes], timeout: float = 60, log_path: Path | None = None
) -> None:
    """Poll `/readyz` until the server answers; fail with its stderr (piped, or written to
    `log_path`) if it dies or never does. The 60 s allow for a machine running two suites at once,
    where a server on PostgreSQL once needed more than 30 s to start; on a quiet one it takes 1-2 s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            # A server still running would never close its stderr: reading it to the end hung the
            # test forever when a loaded machine made the server miss the deadline.
            if process.poll() is None:
                process.kill()
            _, err = process.communicate(timeout=30)
            text = log_path.read_text(errors="replace") if log_path is not None else (err or b"").decode()
            raise RuntimeError(f"provisor serve did not start: {text[-2000:]}")
        time.sleep(0.1)


def listeners(port: int) -> int:
    """Listening sockets on `port` (/proc/net/tcp state 0A): one per worker with SO_REUSEPORT."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[3] == "0A" and int(row.split()[1].split(":")[1], 16) == port)


def wait_listening(port: int, workers: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until every worker listens. `/readyz` answers as soon as one has started; on a loaded
    machine the other was then still importing, and a test that meant to spread its requests over
    both workers (or to stop the database under both) found one."""
    deadline = time.monotonic() + timeout
    while listeners(port) < workers:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"provisor serve: {listeners(port)} of {workers} workers listen on {port}")
        time.sleep(0.05)


class LiveServer:
    def __init__(self, base_url: str, token: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.base_url = base_url
        self.token = token
        self.process = process
        self.log_path = log_path
        self.final_log: str | None = None  # kept when the server stops and its file is removed

    def log(self) -> str:
        """What the server has written to stderr so far (its log), also after it stopped."""
        if self.final_log is not None:
            return self.final_log
        return self.log_path.read_text(errors="replace")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/scim+json"}


@contextmanager
def live_server(
    database_url: str,
    tenant_id: str,
    *,
    workers: int = 1,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[LiveServer]:
    """`env`: extra environment variables for the server (e.g. `PROVISOR_REQUEST_TIMEOUT`)."""
    token = mint_token(database_url, tenant_id)
    port = free_port()
    provisor = Path(sys.executable).with_name("provisor")
    env = {**os.environ, "PROVISOR_LOG_LEVEL": "warning", **(env or {})}
    # The log goes to a file, not a pipe: nobody reads a pipe while the test runs, and a server that
    # logged more than the pipe holds (64 KiB) blocked in its next log call, mid-request.
    with tempfile.NamedTemporaryFile(prefix="provisor-serve-", suffix=".log", delete=False) as log_file:
        log_path = Path(log_file.name)
        process = subprocess.Popen(
            [
                str(provisor),
                "serve",
                "--port",
                str(port),
                "--database-url",
                database_url,
                "--workers",
                str(workers),
                *extra_args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    base = f"http://127.0.0.1:{port}"
    server = LiveServer(f"{base}/scim/v2", token, process, log_path)
    try:
        wait_ready(base, process, log_path=log_path)
        wait_listening(port, workers, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server.final_log = log_path.read_text(errors="replace")
        log_path.unlink(missing_ok=True)
