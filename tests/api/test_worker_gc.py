"""`provisor serve` workers freeze start-up objects out of the cyclic GC (docs/performance.md)."""

from __future__ import annotations

import gc
from pathlib import Path

from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import create_app


def test_a_serving_worker_freezes_what_start_up_loaded(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'gc.db'}", webhooks_enabled=False)
    gc.unfreeze()
    try:
        with TestClient(create_app(settings)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() == 0  # embedded apps leave the host's GC alone
        with TestClient(create_app(settings, freeze_gc=True)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
