"""The conformance summary (root conftest's terminal summary hook) in a real pytest run.

A scratch project with a `tests/conformance/` of fake suite tests is run by pytest in a subprocess, with the
repository's own hook: the summary may only say green when every conformance test passed, including a test
that errors before it records any count (the case that used to print "4/4 runs green" under failures).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONFTEST = "from tests.conftest import pytest_terminal_summary  # noqa: F401\n"

SUITES = """
import json

import pytest


def record(record_property, suite, passed, total):
    counts = {"suite": suite, "db": "sqlite", "passed": passed, "total": total}
    record_property("conformance", json.dumps(counts))


def test_green_suite(record_property):
    record(record_property, "green-suite", 5, 5)
"""

BROKEN = """

@pytest.fixture
def suite_file():
    raise FileNotFoundError("../shared/conformance/x.json")


def test_errors_before_recording(suite_file, record_property):
    record(record_property, "never-recorded", 9, 9)


def test_fails_before_recording(record_property):
    pytest.fail("server did not start")
"""


def run_summary(tmp_path: Path, source: str) -> tuple[int, list[str]]:
    suites = tmp_path / "tests" / "conformance"
    suites.mkdir(parents=True)
    (suites / "test_fake_suites.py").write_text(source)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--import-mode=importlib",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    section = done.stdout.split("IdP conformance suites", 1)
    assert len(section) == 2, done.stdout + done.stderr
    lines = [line for line in section[1].splitlines()[1:] if line.strip() and not line.startswith("=")]
    return done.returncode, lines


def test_summary_is_red_when_a_suite_test_errors_before_recording(tmp_path: Path) -> None:
    code, lines = run_summary(tmp_path, SUITES + BROKEN)
    assert code == 1
    summary = [line for line in lines if line.startswith("conformance summary:")]
    assert summary == ["conformance summary: 5/5 assertions passed; 1/3 runs green; 1/3 tests passed: RED"]
    assert "ok   green-suite [sqlite]: 5/5 assertions passed" in lines
    failed = [line for line in lines if line.startswith("FAIL ")]
    assert len(failed) == 2 and all("before recording any count" in line for line in failed), lines
    assert any("test_errors_before_recording" in line for line in failed)


def test_summary_is_green_only_when_every_conformance_test_passed(tmp_path: Path) -> None:
    code, lines = run_summary(tmp_path, SUITES)
    assert code == 0
    assert lines[-1] == "conformance summary: 5/5 assertions passed; 1/1 runs green; 1/1 tests passed: green"
