"""List and search requests (RFC 7644 sections 3.4.2 and 3.4.3), from a query string or a body."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provisor.errors import ScimError, invalid_value

SEARCH_REQUEST_URN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#: The largest startIndex kept: past every row a table can hold, and its offset still fits the
#: databases' 64-bit integers (a larger one answered 500). Any startIndex past the results gives
#: an empty page (RFC 7644 3.4.2.4), so a larger one is answered as this one.
MAX_START_INDEX = 2**62
LIST_RESPONSE_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


@dataclass(frozen=True)
class ListQuery:
    filter: str | None = None
    sort_by: str | None = None
    descending: bool = False
    start_index: int = 1
    count: int = 100
    attributes: str | None = None
    excluded_attributes: str | None = None
    #: RFC 9865: "" asks for the first cursor page, a token asks for the page it names.
    cursor: str | None = None
    #: A root `/.search` (RFC 7644 section 3.4.3): attributes a resource type lacks are absent.
    across_types: bool = False


def _int(name: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise invalid_value(f"{name} must be an integer")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise invalid_value(f"{name} must be an integer, got {raw!r}") from None


def _text(name: str, raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        if not all(isinstance(item, str) for item in raw):
            raise invalid_value(f"{name} must be a list of attribute names")
        return ",".join(raw)
    if not isinstance(raw, str):
        raise invalid_value(f"{name} must be a string")
    return raw


def build_query(values: Mapping[str, Any], *, default_count: int, max_count: int) -> ListQuery:
    """Build from already case-folded parameter names (query string or SearchRequest keys)."""
    start = _int("startIndex", values["startindex"]) if values.get("startindex") not in (None, "") else 1
    count = _int("count", values["count"]) if values.get("count") not in (None, "") else default_count
    order = _text("sortOrder", values.get("sortorder"))
    if order is not None and order.lower() not in ("ascending", "descending"):
        raise invalid_value("sortOrder must be 'ascending' or 'descending'")
    cursor = values.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise invalid_value("cursor must be a string")
    return ListQuery(
        filter=_text("filter", values.get("filter")) or None,
        sort_by=_text("sortBy", values.get("sortby")) or None,
        descending=bool(order and order.lower() == "descending"),
        # RFC 7644 3.4.2.4: values less than 1 are interpreted as 1
        start_index=min(max(1, start), MAX_START_INDEX),
        count=min(max(0, count), max_count),  # negative counts are 0; above the maximum, clamped
        attributes=_text("attributes", values.get("attributes")) or None,
        excluded_attributes=_text("excludedAttributes", values.get("excludedattributes")) or None,
        cursor=cursor,
    )


def from_query_params(params: Mapping[str, str], *, default_count: int, max_count: int) -> ListQuery:
    return build_query(
        {k.lower(): v for k, v in params.items()}, default_count=default_count, max_count=max_count
    )


def from_search_request(body: Any, *, default_count: int, max_count: int) -> ListQuery:
    if not isinstance(body, dict):
        raise ScimError(400, "a SearchRequest body must be a JSON object", "invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or SEARCH_REQUEST_URN.lower() not in [str(s).lower() for s in schemas]
    ):
        raise ScimError(400, f"schemas must contain {SEARCH_REQUEST_URN}", "invalidSyntax")
    return build_query(
        {k.lower(): v for k, v in body.items()}, default_count=default_count, max_count=max_count
    )


def list_response(resources: list[dict[str, Any]], total: int, start_index: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
