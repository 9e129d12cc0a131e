"""The live-server harness itself: a server that misses its start deadline fails the test, it does
not hang it (tests/live/server.py `wait_ready`)."""

from __future__ import annotations

import subprocess
import sys
import threading

from tests.live.server import free_port, wait_ready


def test_a_server_never_ready_fails_the_wait_instead_of_hanging_it() -> None:
    # Runs on, answers nothing and keeps its stderr open: as a server on a loaded machine that is
    # still starting when the deadline passes.
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.stderr.write('starting'); sys.stderr.flush(); time.sleep(120)",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            wait_ready(f"http://127.0.0.1:{free_port()}", process, timeout=1)
        except BaseException as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(timeout=40)
    try:
        assert not waiter.is_alive(), "wait_ready hung on the stderr of a server still running"
        assert len(raised) == 1 and isinstance(raised[0], RuntimeError)
        assert "starting" in str(raised[0])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
