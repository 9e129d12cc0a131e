"""Against a live server: a client that drips its body slowly is cut off by the request timeout
with a SCIM 503, and the worker keeps serving other clients meanwhile (both databases)."""

from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest

from tests.live.server import live_server


@pytest.mark.slow
def test_slow_drip_body_times_out_and_others_are_served(
    database_url: str, tenant_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISOR_REQUEST_TIMEOUT", "1.5")
    with live_server(database_url, tenant_id, workers=1) as server:
        host, port = server.base_url.split("//", 1)[1].split("/", 1)[0].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /scim/v2/Users HTTP/1.1\r\n"
                + f"Host: {host}\r\nAuthorization: Bearer {server.token}\r\n".encode()
                + b"Content-Type: application/scim+json\r\nContent-Length: 100000\r\n\r\n{"
            )
            began = time.monotonic()
            served_meanwhile = 0
            response = b""
            sock.settimeout(0.2)
            while time.monotonic() - began < 8:
                try:
                    sock.sendall(b" ")
                except OSError:
                    break
                # Other clients are served while the drip goes on.
                got = httpx.get(f"{server.base_url}/Users", headers=server.headers, timeout=5)
                assert got.status_code == 200
                served_meanwhile += 1
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                response += chunk
                if b"\r\n\r\n" in response:
                    break
            elapsed = time.monotonic() - began
            head, _, body = response.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            sock.settimeout(5)
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        assert head.startswith(b"HTTP/1.1 503"), response[:300]
        assert b"application/scim+json" in head.lower()
        assert b"x-request-id" in head.lower()
        error = orjson.loads(body)
        assert error["status"] == "503" and "timed out" in error["detail"]
        assert 1.0 <= elapsed < 6, elapsed
        assert served_meanwhile >= 2
        # and the worker is still healthy afterwards
        created = httpx.post(
            f"{server.base_url}/Users", headers=server.headers, json={"userName": "after"}, timeout=5
        )
        assert created.status_code == 201
