"""RFC 9865 cursor pagination as keyset pagination over (sort key, id).

A cursor names a position in the ordering, not an offset, so pages stay correct while resources
are created and deleted between requests: nothing that existed throughout is skipped or repeated,
and a page costs an index range scan however deep into the directory it is.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, or_

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


def keyset_condition(
    key: ColumnElement[Any], ident: ColumnElement[Any], cursor: Cursor, *, descending: bool
) -> ColumnElement[bool]:
    """Rows strictly after (forward) or before the cursor in `ORDER BY key NULLS LAST, id`.

    The ordering is (key IS NULL, key, id), ascending or with key and id descending; NULL keys
    always come last, as in the listing itself.
    """
    later = cursor.forward
    id_after = (ident < cursor.id) if descending else (ident > cursor.id)
    id_before = (ident > cursor.id) if descending else (ident < cursor.id)
    if cursor.key is None:
        if later:
            return and_(key.is_(None), id_after)
        return or_(key.is_not(None), and_(key.is_(None), id_before))
    key_after = (key < cursor.key) if descending else (key > cursor.key)
    key_before = (key > cursor.key) if descending else (key < cursor.key)
    if later:
        return or_(key.is_(None), key_after, and_(key == cursor.key, id_after))
    return and_(key.is_not(None), or_(key_before, and_(key == cursor.key, id_before)))
