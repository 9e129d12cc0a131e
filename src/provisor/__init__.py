"""Provisor: a SCIM 2.0 service provider for Users and Groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from provisor.config import Settings


def create_app(settings: Settings | None = None, **kwargs: Any) -> Starlette:
    """Build the ASGI app (see `provisor.http.app.create_app`); imported lazily to keep CLI start fast."""
    from provisor.http.app import create_app as _create_app

    return _create_app(settings, **kwargs)
