"""Jinja2 rendering for the console: autoescaped templates shipped as package data, and the
console's Content-Security-Policy (its own CSS and JS only: no inline script or style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

HERE = Path(__file__).parent
CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _pretty(value: Any) -> str:
    """Stored JSON text (or a value) indented for a <pre>; the template escapes it."""
    if value is None:
        return ""
    if isinstance(value, str):
        raw: str = value
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    text: str = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return text


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


_env.filters["pretty"] = _pretty
_env.filters["duration"] = _duration


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    signed = getattr(request.state, "console", None)
    body = _env.get_template(template).render(
        csrf=signed.csrf if signed else "", nav=template.split(".")[0], **context
    )
    return HTMLResponse(body, status_code=status)
