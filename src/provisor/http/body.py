"""Reading request bodies safely: media type, size limit before reading, JSON parsing."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from provisor.errors import ScimError, invalid_syntax, invalid_value

ACCEPTED_MEDIA_TYPES = frozenset({"application/scim+json", "application/json"})
#: Deepest nesting accepted (Settings.max_json_depth); orjson itself stops only at 1024.
DEFAULT_MAX_DEPTH = 64


def check_depth(raw: bytes, value: Any, max_depth: int) -> None:
    """Reject documents nested deeper than `max_depth` (iteratively: no recursion to exhaust).

    Counting brackets in C first makes the common case free: a document with fewer opening
    brackets than the limit cannot be nested deeper than it.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > max_depth:
            raise invalid_syntax(f"request body is nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def check_no_nul(raw: bytes, value: Any) -> None:
    """PostgreSQL cannot store U+0000 in text or JSONB; refuse it as a client error, not a 500."""
    if b"\\u0000" not in raw:
        return
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise invalid_value("strings must not contain NUL (U+0000)")
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


async def read_json(request: Request, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type not in ACCEPTED_MEDIA_TYPES:
        raise ScimError(415, f"unsupported media type {media_type!r}; send application/scim+json")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise ScimError(413, f"request body exceeds {max_bytes} bytes")
        except ValueError:
            raise invalid_syntax("invalid Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ScimError(413, f"request body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise invalid_syntax("request body is empty")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_syntax(f"request body is not valid JSON: {exc}") from None
    check_depth(raw, value, max_depth)
    check_no_nul(raw, value)
    return value


async def read_object(request: Request, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    body = await read_json(request, max_bytes, max_depth)
    if not isinstance(body, dict):
        raise invalid_syntax("request body must be a JSON object")
    return body
