"""Import-string entry point for uvicorn workers: settings come from `PROVISOR_*` variables."""

from __future__ import annotations

from starlette.applications import Starlette

from provisor.config import Settings
from provisor.http.app import create_app


def app_from_env() -> Starlette:
    # The parent `provisor serve` already migrated; workers must not race each other doing it.
    return create_app(Settings.from_env(migrate_on_start=False), freeze_gc=True)
