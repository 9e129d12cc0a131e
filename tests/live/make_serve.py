"""Run the real `make serve` (Makefile + scripts/make_serve.py) against a given database and port.

`-o .venv/.installed` keeps make from reinstalling anything, and `BIN=` points it at this interpreter's
virtualenv, so the test runs exactly the commands a user's `make serve` runs. Output goes to a file (the
server keeps running, a pipe nobody reads could fill up).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEN_LINE = re.compile(r"^\s*Bearer token:\s+(\S+)\s*$", re.MULTILINE)


def make_serve_command(database_url: str, port: int) -> list[str]:
    return [
        "make",
        "-s",
        "--no-print-directory",
        "-o",
        ".venv/.installed",
        "serve",
        f"BIN={BIN}",
        f"PORT={port}",
        f"DATABASE_URL={database_url}",
    ]


def make_serve_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVISOR_", "MAKE"))}
    return {**env, "PROVISOR_LOG_LEVEL": "warning"}


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    output: Path
    base_url: str  # .../scim/v2
    token: str

    def text(self) -> str:
        return self.output.read_text(errors="replace")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop make and the server it exec'd (their own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextmanager
def make_serve(database_url: str, port: int, output: Path, timeout: float = 30) -> Iterator[Served]:
    """`make serve` running until the block ends: waits for its banner's token and `/readyz`."""
    with output.open("wb") as sink:
        process = subprocess.Popen(
            make_serve_command(database_url, port),
            cwd=REPO,
            env=make_serve_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            match = TOKEN_LINE.search(output.read_text(errors="replace"))
            if match:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            if process.poll() is not None or time.monotonic() > deadline:
                log = output.read_text(errors="replace")[-3000:]
                raise AssertionError(f"make serve did not start:\n{log}")
            time.sleep(0.1)
        yield Served(process, output, f"{base}/scim/v2", match.group(1))
    finally:
        stop(process)
