"""RFC 9865 cursor pagination as keyset pagination over (sort key, id).

A cursor names a position in the ordering, not an offset, so pages stay correct while resources
are created and deleted between requests: nothing that existed throughout is skipped or repeated,
and a page costs an index range scan however deep into the directory it is. The SQL condition that
selects the rows after a position is storage's (storage/keyset.py); this module only encodes,
signs and decodes positions.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from provisor.errors import ScimError

CURSOR_VERSION = 1


def invalid_cursor(detail: str = "the cursor is not valid for this request") -> ScimError:
    return ScimError(400, detail, "invalidCursor")


@dataclass(frozen=True)
class Cursor:
    forward: bool  # True: the page after the position; False: the page before it
    key: Any  # the sort key at the position (None for NULL)
    id: str
    signature: str  # ties the cursor to the filter and sort it was issued for

    def encode(self) -> str:
        raw = orjson.dumps(
            {"v": CURSOR_VERSION, "f": self.forward, "k": self.key, "i": self.id, "s": self.signature}
        )
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, signature: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = orjson.loads(raw)
            cursor = cls(bool(data["f"]), data["k"], str(data["i"]), str(data["s"]))
            valid = data["v"] == CURSOR_VERSION and isinstance(data["f"], bool)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            raise invalid_cursor() from None
        if not valid or cursor.signature != signature:
            raise invalid_cursor()
        return cursor


def signature(
    tenant_id: str, resource_type: str, filter_text: str | None, sort_by: str | None, desc: bool
) -> str:
    material = orjson.dumps([tenant_id, resource_type, filter_text, (sort_by or "").lower(), desc])
    return hashlib.sha256(material).hexdigest()[:16]
