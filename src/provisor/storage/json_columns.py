"""JSON as both databases store it: the engines' column codec, and rows that bypass SQLAlchemy's
JSON type (PostgreSQL's `COPY`, SQLite's batch INSERTs: storage/batch.py)."""

from __future__ import annotations

from typing import Any

import orjson


def json_text(value: Any) -> str:
    """A value as its stored JSON text."""
    return orjson.dumps(value).decode()


#: `create_async_engine` options: JSON columns are written and read with orjson.
ENGINE_JSON: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": orjson.loads}
