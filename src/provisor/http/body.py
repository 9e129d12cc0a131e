"""Reading request bodies safely: media type, size limit before reading, JSON parsing."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from provisor.errors import ScimError, invalid_syntax

ACCEPTED_MEDIA_TYPES = frozenset({"application/scim+json", "application/json"})


async def read_json(request: Request, max_bytes: int) -> Any:
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
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_syntax(f"request body is not valid JSON: {exc}") from None


async def read_object(request: Request, max_bytes: int) -> dict[str, Any]:
    body = await read_json(request, max_bytes)
    if not isinstance(body, dict):
        raise invalid_syntax("request body must be a JSON object")
    return body
