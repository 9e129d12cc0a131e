"""SCIM responses: orjson bodies, `application/scim+json` on every response."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from provisor.errors import ScimError

SCIM_MEDIA_TYPE = "application/scim+json"


class ScimResponse(Response):
    media_type = SCIM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        return orjson.dumps(content)


def scim_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> ScimResponse:
    return ScimResponse(body, status_code=status, headers=headers)


def error_response(error: ScimError, headers: dict[str, str] | None = None) -> ScimResponse:
    return ScimResponse(error.to_body(), status_code=error.status, headers=headers)


def empty(status: int, headers: dict[str, str] | None = None) -> Response:
    response = Response(b"", status_code=status, headers=headers)
    if status != 304:
        response.headers["content-type"] = SCIM_MEDIA_TYPE
    return response
