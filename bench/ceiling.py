"""The machine's ceiling: bare Starlette + uvicorn (2 workers) answering one static SCIM user.

Figures from different machines of "the same class" differ by up to 2x (a slower host CPU, a
noisy neighbour), which would hide or invent any regression. So every run first measures what
the machine gives a server that does no work at all, with the same wrk settings as the
scenarios, and the report scales by it. The issue's targets were set on a machine where this
ceiling was about 39,000 req/s (`REFERENCE_RPS`).

    uvicorn --app-dir . bench.ceiling:app   # the app; `measure()` starts and drives it
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: The ceiling on the machine the targets were set on (docs/performance.md, "Method").
REFERENCE_RPS = 39_000.0

_USER = orjson.dumps(
    {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Babs Jensen",
        "active": True,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": True}],
        "meta": {
            "resourceType": "User",
            "created": "2026-11-28T09:40:08.123456Z",
            "lastModified": "2026-11-28T09:40:08.123456Z",
            "version": 'W/"1"',
            "location": "http://127.0.0.1/scim/v2/Users/2819c223-7f76-453a-919d-413861904646",
        },
    }
)


async def _user(request: Request) -> Response:
    return Response(_USER, media_type="application/scim+json")


app = Starlette(routes=[Route("/scim/v2/Users/{id}", _user)])

_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)


def measure(port: int, duration: int, root: Path) -> float:
    """Requests/s of wrk (1 thread, 16 connections, as the scenarios) against the bare app."""
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "uvicorn"),
            "--app-dir",
            str(root),
            "bench.ceiling:app",
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/scim/v2/Users/x"
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["wrk", "-t1", "-c1", "-d1s", url], capture_output=True).returncode != 0:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the ceiling app did not start")
            time.sleep(0.3)
        time.sleep(1.0)  # both workers up, not only the first
        done = subprocess.run(
            ["wrk", "-t1", "-c16", f"-d{duration}s", url], capture_output=True, text=True, check=True
        )
        match = _RPS.search(done.stdout)
        if match is None:
            raise RuntimeError(f"cannot read wrk's output: {done.stdout[:200]}")
        return float(match.group(1))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
