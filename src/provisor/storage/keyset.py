"""Keyset pagination in SQL: the rows strictly after (or before) a position in a listing's order.

The position is service/cursor.py's `Cursor`, seen here only through the three fields it must
have, so that storage needs nothing from the service layer.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, or_


class Position(Protocol):
    """A place in `ORDER BY key NULLS LAST, id`: the sort key there (None for NULL) and the id."""

    @property
    def forward(self) -> bool: ...  # True: the rows after the position; False: before it

    @property
    def key(self) -> Any: ...

    @property
    def id(self) -> str: ...


def keyset_condition(
    key: ColumnElement[Any], ident: ColumnElement[Any], cursor: Position, *, descending: bool
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
