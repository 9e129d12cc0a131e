"""Where the IdP suites live and how suite tests record their counts (see conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE_DIR = (REPO_ROOT / ".." / "shared" / "conformance").resolve()


def suite_path(name: str) -> Path:
    path = CONFORMANCE_DIR / name
    if not path.is_file():
        pytest.fail(
            f"conformance suite {name} not found at {path} (expected <repo root>/../shared/conformance)"
        )
    return path


def load_suite(name: str) -> Any:
    return json.loads(suite_path(name).read_text())


def record_counts(record_property: Any, suite: str, database: str, passed: int, total: int) -> None:
    """Record one suite run's counts on the test report (read back by the terminal summary below)."""
    record_property(
        "conformance", json.dumps({"suite": suite, "db": database, "passed": passed, "total": total})
    )


def database_kind(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgres") else "sqlite"
