"""ETag preconditions (RFC 7644 section 3.14, RFC 9110 section 13)."""

from __future__ import annotations

from provisor.errors import precondition_failed


def _opaque(tag: str) -> str:
    tag = tag.strip()
    if tag[:2].upper() == "W/":
        tag = tag[2:]
    return tag.strip().strip('"')


def etag_matches(header: str, version: int) -> bool:
    """Weak comparison of an If-Match / If-None-Match header value against a version."""
    if header.strip() == "*":
        return True
    wanted = str(version)
    return any(_opaque(part) == wanted for part in header.split(",") if part.strip())


def check_if_match(header: str | None, version: int) -> None:
    if header is not None and not etag_matches(header, version):
        raise precondition_failed(f'resource version is W/"{version}", which does not match If-Match')
