"""`provisor serve` workers freeze start-up objects out of the cyclic GC and collect its young
generation less often (docs/performance.md)."""

from __future__ import annotations

import gc
from pathlib import Path

from starlette.testclient import TestClient

from provisor.config import Settings
from provisor.http.app import SERVING_GC_THRESHOLD, create_app


def test_a_serving_worker_freezes_what_start_up_loaded(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'gc.db'}", webhooks_enabled=False)
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        with TestClient(create_app(settings)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() == 0  # embedded apps leave the host's GC alone
            assert gc.get_threshold() == thresholds
        with TestClient(create_app(settings, freeze_gc=True)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (SERVING_GC_THRESHOLD, *thresholds[1:])
        assert gc.get_threshold() == thresholds  # given back when the app stops
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
