"""Webhook signatures: `Provisor-Signature: t=<unix ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">`.

The timestamp is inside the MAC so a captured request cannot be replayed after `tolerance`.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Provisor-Signature"
EVENT_ID_HEADER = "Provisor-Event-Id"


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Provisor-Signature` header value for `body`."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={_mac(secret, ts, body)}"


def verify_signature(
    secret: str, header: str, body: bytes | str, tolerance: int = 300, *, now: float | None = None
) -> bool:
    """True if `header` signs `body` (raw request bytes) with `secret` within `tolerance` seconds.

    Several `v1=` entries are accepted (any match wins), which allows secret rotation.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else body
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if tolerance >= 0 and abs(current - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, raw)
    return any(hmac.compare_digest(expected, c) for c in candidates)
