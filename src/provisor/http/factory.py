"""Entry points for uvicorn: `app_from_settings` for `provisor serve` (its workers receive the parent's
`Settings` as a value), `app_from_env` for `uvicorn provisor.http.factory:app_from_env --factory`."""

from __future__ import annotations

from starlette.applications import Starlette

from provisor.config import Settings
from provisor.http.app import create_app


def app_from_env() -> Starlette:
    # The parent `provisor serve` already migrated; workers must not race each other doing it.
    return create_app(Settings.from_env(migrate_on_start=False), freeze_gc=True)


def app_from_settings(settings: Settings) -> Starlette:
    """The app of one `provisor serve` worker; `settings` were checked (and the database migrated)
    by the parent."""
    return create_app(settings, freeze_gc=True)
