"""The operator's web console under `/console/` (docs/console.md)."""

from provisor.http.console.app import console_app

__all__ = ["console_app"]
