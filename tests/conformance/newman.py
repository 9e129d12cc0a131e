"""Run a Postman collection with newman and read back every `pm.test` result.

newman is installed on first use with npm into `<repo>/.newman` (git-ignored) and reused afterwards; a file
lock keeps parallel pytest workers from installing it twice. Collections are written to a temporary directory
(never into the repository) and newman's JSON reporter output is parsed into per-assertion results.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conformance.suites import REPO_ROOT

NEWMAN_DIR = REPO_ROOT / ".newman"
NEWMAN_VERSION = "6"


def newman_executable() -> Path:
    binary = NEWMAN_DIR / "node_modules" / ".bin" / "newman"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is required to install newman (Node.js 18+)")
    NEWMAN_DIR.mkdir(exist_ok=True)
    with (NEWMAN_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(NEWMAN_DIR),
                    "--no-audit",
                    "--no-fund",
                    f"newman@{NEWMAN_VERSION}",
                ],
                check=True,
                capture_output=True,
                timeout=600,
            )
    return binary


@dataclass
class TestResult:
    item: str
    name: str
    passed: bool
    error: str
    exchange: str

    def describe(self) -> str:
        line = f"[{'PASS' if self.passed else 'FAIL'}] {self.item}: {self.name}"
        if not self.passed:
            line += f" -- {self.error}\n    {self.exchange}"
        return line


@dataclass
class Exchange:
    item: str
    method: str
    url: str
    request_body: str
    status: int | None
    response_body: str
    request_error: str | None

    def describe(self) -> str:
        body = f"\n    request body: {self.request_body}" if self.request_body else ""
        if self.request_error:
            return f"{self.method} {self.url}{body}\n    -> request error: {self.request_error}"
        text = self.response_body if len(self.response_body) < 1500 else self.response_body[:1500] + "..."
        return f"{self.method} {self.url}{body}\n    -> {self.status} {text}"


@dataclass
class NewmanRun:
    name: str
    tests: list[TestResult] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(t.passed for t in self.tests)

    @property
    def total(self) -> int:
        return len(self.tests)

    @property
    def failed_tests(self) -> list[TestResult]:
        return [t for t in self.tests if not t.passed]

    @property
    def request_errors(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.request_error]

    def summary(self) -> str:
        return (
            f"{self.name}: {self.passed}/{self.total} tests passed over {len(self.exchanges)} requests; "
            f"{len(self.request_errors)} request errors; {len(self.failures)} newman failures"
        )

    def format(self, only_failures: bool = True) -> str:
        tests = self.failed_tests if only_failures else self.tests
        lines = [self.summary(), *(t.describe() for t in tests)]
        lines += [f"[REQUEST ERROR] {e.item}: {e.describe()}" for e in self.request_errors]
        lines += [f"[NEWMAN] {f}" for f in self.failures]
        return "\n".join(lines)


def _text(stream: Any) -> str:
    if isinstance(stream, dict) and stream.get("type") == "Buffer":
        return bytes(stream.get("data", [])).decode("utf-8", "replace")
    return "" if stream is None else str(stream)


def _url(url: Any) -> str:
    if isinstance(url, str):
        return url
    if not isinstance(url, dict):
        return ""
    host = ".".join(url.get("host") or [])
    port = f":{url['port']}" if url.get("port") else ""
    path = "/".join(url.get("path") or [])
    query = "&".join(
        f"{q.get('key')}={q.get('value')}" for q in url.get("query") or [] if not q.get("disabled")
    )
    return f"{url.get('protocol', 'http')}://{host}{port}/{path}" + (f"?{query}" if query else "")


def run_collection(
    collection: dict[str, Any], env_vars: dict[str, str], work_dir: Path, name: str
) -> NewmanRun:
    """Run `collection` with `env_vars` as environment variables; return every test's outcome."""
    work_dir.mkdir(parents=True, exist_ok=True)
    collection_file = work_dir / "collection.json"
    report_file = work_dir / "newman-report.json"
    collection_file.write_text(json.dumps(collection))
    command = [str(newman_executable()), "run", str(collection_file), "--reporters", "json"]
    command += ["--reporter-json-export", str(report_file), "--timeout-request", "30000", "--color", "off"]
    for key, value in env_vars.items():
        command += ["--env-var", f"{key}={value}"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if not report_file.exists():
        raise RuntimeError(
            f"newman produced no report (exit {completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    run = json.loads(report_file.read_text())["run"]
    result = NewmanRun(name)
    for execution in run.get("executions", []):
        item = execution.get("item", {}).get("name", "?")
        request = execution.get("request") or {}
        response = execution.get("response") or {}
        request_error = execution.get("requestError")
        exchange = Exchange(
            item=item,
            method=request.get("method", "?"),
            url=_url(request.get("url")),
            request_body=((request.get("body") or {}).get("raw") or "")[:1500],
            status=response.get("code"),
            response_body=_text(response.get("stream")),
            request_error=(request_error or {}).get("message") if request_error else None,
        )
        result.exchanges.append(exchange)
        for assertion in execution.get("assertions") or []:
            error = assertion.get("error")
            result.tests.append(
                TestResult(
                    item=item,
                    name=assertion.get("assertion", "?"),
                    passed=error is None and not assertion.get("skipped"),
                    error=(error or {}).get("message", "") if error else "",
                    exchange=exchange.describe(),
                )
            )
    for failure in run.get("failures", []):
        error = failure.get("error") or {}
        if error.get("name") == "AssertionError":
            continue  # already counted as a failed test above
        source = (failure.get("source") or {}).get("name", "?")
        result.failures.append(f"{source}: {error.get('name')}: {error.get('message')}")
    return result
