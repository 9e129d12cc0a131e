"""`make test` never needs the IdP suites beside the repository; `make conformance` refuses loudly
without them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_make_conformance_fails_in_one_line_when_the_suites_are_missing(tmp_path: Path) -> None:
    # A clone with nothing beside it: <tmp>/repo, and no <tmp>/shared.
    clone = tmp_path / "repo"
    clone.mkdir()
    shutil.copy(REPO / "Makefile", clone / "Makefile")
    done = subprocess.run(
        ["make", "-s", "conformance"], cwd=clone, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    first = done.stderr.splitlines()[0]
    missing = (tmp_path / "shared" / "conformance").resolve()
    assert first.startswith(f"make conformance: the IdP suites are missing: {missing} not found"), done.stderr
    assert not (clone / ".venv").exists(), "it installed before checking"


def test_default_collection_leaves_out_the_conformance_suites() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    # Not the exit code: a collection error elsewhere is that test's own failure.
    assert len(ids) > 500, done.stdout[-2000:] + done.stderr[-2000:]
    assert [i for i in ids if i.startswith("tests/conformance/")] == []
