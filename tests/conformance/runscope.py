"""A small runner for Runscope test exports (the format of Okta's SCIM validator suites).

It runs the `request` steps of an export in order against any `httpx.Client` (a live server or the in-process
`TestClient`): `{{var}}` substitution in URL, headers and body; the structured assertions (`assertions[]`)
with Runscope's comparisons; captured variables (`variables[]`); `pause` steps skipped. Embedded JavaScript
(`scripts[]`) is not executed: a test passes a Python re-implementation per step index, and a non-empty script
without one is reported as a failed assertion (never silently ignored). Steps that talk to something other
than the SCIM server (e.g. an Okta org) can be replaced by a Python callable replaying that traffic.

Everything is reported per assertion (`Report.results`), so a test can print counts and every failure.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

_VAR = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_PATH_TOKEN = re.compile(r"""\.?([^.\[\]]+)|\[(\d+)\]|\[["']([^"']*)["']\]""")
_MISSING = object()


# ---- the suite's initial script (okta-spec-initial-script.js), reproduced in Python ---------------------


def okta_spec_initial_variables(rng: random.Random | None = None) -> dict[str, str]:
    """What `okta-spec-initial-script.js` defines, with the same shapes and randomness.

    firstname: "Runscope" + 3 digits; lastname: one upper-case letter, 8 lower-case letters, 3 digits;
    email = firstname + lastname + "@atko.com" (mixed case), also used as userName; its upper-case twin;
    a fixed non-existent email and a fixed non-existent id.
    """
    rng = rng or random.SystemRandom()
    firstname = "Runscope" + "".join(rng.choice(string.digits) for _ in range(3))
    lastname = (
        rng.choice(string.ascii_uppercase)
        + "".join(rng.choice(string.ascii_lowercase) for _ in range(8))
        + "".join(rng.choice(string.digits) for _ in range(3))
    )
    email = f"{firstname}{lastname}@atko.com"
    return {
        "randomGivenName": firstname,
        "randomFamilyName": lastname,
        "randomEmail": email,
        "randomUsername": email,
        "InvalidUserEmail": "abcdefgh@atko.com",
        "UserIdThatDoesNotExist": "010101001010101011001010101011",
        "randomUsernameCaps": email.upper(),
    }


# ---- value helpers --------------------------------------------------------------------------------------


def substitute(text: str, variables: Mapping[str, Any]) -> str:
    """Replace `{{name}}` by the variable's value; unknown ones are left as they are (as in Runscope)."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            return match.group(0)
        return js_string(variables[name])

    return _VAR.sub(repl, text)


def js_string(value: Any) -> str:
    """A value as JavaScript's String() shows it (how Runscope compares JSON values to expected text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(value)
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def json_property(document: Any, prop: str | None) -> Any:
    """Follow a JS-style property path (`Resources[0].emails[0].value`, `a["b.c"]`); `_MISSING` if absent."""
    if prop is None or prop == "":
        return document
    current = document
    pos = 0
    while pos < len(prop):
        match = _PATH_TOKEN.match(prop, pos)
        if match is None or match.end() == pos:
            return _MISSING
        pos = match.end()
        key, index, quoted = match.groups()
        if index is not None:
            if not isinstance(current, list) or int(index) >= len(current):
                return _MISSING
            current = current[int(index)]
            continue
        name = quoted if quoted is not None else key
        if isinstance(current, dict) and name in current:
            current = current[name]
        elif isinstance(current, list) and name == "length":
            current = len(current)
        elif isinstance(current, list) and name.isdigit() and int(name) < len(current):
            current = current[int(name)]
        else:
            return _MISSING
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _empty(value: Any) -> bool:
    return value is _MISSING or value is None or value in ("", [], {})


def compare(comparison: str, actual: Any, expected: str | None) -> bool:
    """Runscope's assertion comparisons. `actual` is `_MISSING` when the property does not exist.

    `is_a_number` is stricter than Runscope on purpose: only a JSON number passes, not a numeric string
    (SCIM requires integers for `totalResults`, `startIndex` and `itemsPerPage`).
    """
    exp = "" if expected is None else expected
    if comparison == "empty":
        return _empty(actual)
    if comparison == "not_empty":
        return not _empty(actual)
    if comparison == "is_null":
        return actual is None
    if actual is _MISSING:
        return comparison in ("not_equal", "does_not_contain")
    if comparison == "equal":
        return js_string(actual) == exp
    if comparison == "not_equal":
        return js_string(actual) != exp
    if comparison in ("equal_number", "not_equal_number"):
        left, right = _as_float(actual), _as_float(exp)
        same = left is not None and right is not None and left == right
        return same if comparison == "equal_number" else not same
    if comparison in ("is_less_than", "is_less_than_or_equal", "is_greater_than", "is_greater_than_or_equal"):
        left, right = _as_float(actual), _as_float(exp)
        if left is None or right is None:
            return False
        return {
            "is_less_than": left < right,
            "is_less_than_or_equal": left <= right,
            "is_greater_than": left > right,
            "is_greater_than_or_equal": left >= right,
        }[comparison]
    if comparison == "is_a_number":
        return _is_number(actual)
    if comparison in ("contains", "does_not_contain"):
        if isinstance(actual, list):
            found = any(js_string(item) == exp or (isinstance(item, str) and exp in item) for item in actual)
        elif isinstance(actual, dict):
            found = exp in actual
        else:
            found = exp in js_string(actual)
        return found if comparison == "contains" else not found
    if comparison == "has_key":
        return isinstance(actual, dict) and exp in actual
    if comparison == "has_value":
        if isinstance(actual, list):
            return any(js_string(item) == exp for item in actual)
        if isinstance(actual, dict):
            return any(js_string(item) == exp for item in actual.values())
        return False
    raise ValueError(f"unsupported Runscope comparison {comparison!r}")


# ---- results ----------------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One HTTP exchange as the runner saw it (kept for failure reports)."""

    method: str
    url: str
    request_body: str | None
    status: int
    response_text: str
    elapsed_ms: float
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        try:
            return json.loads(self.response_text)
        except ValueError:
            return _MISSING

    def describe(self) -> str:
        body = f"\n    request body: {self.request_body}" if self.request_body else ""
        text = self.response_text if len(self.response_text) < 1500 else self.response_text[:1500] + "..."
        return f"{self.method} {self.url}{body}\n    -> {self.status} ({self.elapsed_ms:.0f} ms) {text}"


@dataclass
class AssertionResult:
    step: int
    note: str
    description: str
    passed: bool
    actual: str
    exchange: Exchange | None

    def describe(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        line = f"[{status}] step {self.step} ({self.note}): {self.description}; actual: {self.actual}"
        if not self.passed and self.exchange is not None:
            line += "\n    " + self.exchange.describe()
        return line


@dataclass
class Report:
    name: str
    results: list[AssertionResult] = field(default_factory=list)
    skipped_steps: list[int] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failures(self) -> list[AssertionResult]:
        return [r for r in self.results if not r.passed]

    @property
    def total(self) -> int:
        return len(self.results)

    def summary(self) -> str:
        return f"{self.name}: {self.passed}/{self.total} assertions passed, {len(self.failures)} failed"

    def format(self, only_failures: bool = False) -> str:
        shown = self.failures if only_failures else self.results
        return "\n".join([self.summary(), *(r.describe() for r in shown)])


# A replacement for a step: it may do any traffic it likes and returns the assertion results it checked.
StepOverride = Callable[["StepContext"], list[tuple[str, bool, str]]]
# A Python re-implementation of a step's JavaScript: (exchange) -> [(description, passed, actual)].
ScriptCheck = Callable[[Exchange], list[tuple[str, bool, str]]]


@dataclass
class StepContext:
    index: int
    step: dict[str, Any]
    variables: dict[str, Any]
    client: httpx.Client


def _headers(raw: Mapping[str, Any] | None, variables: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        values = value if isinstance(value, list) else [value]
        out[key] = ", ".join(substitute(str(v), variables) for v in values)
    return out


def _source_value(source: str, prop: str | None, exchange: Exchange) -> Any:
    if source == "response_status":
        return exchange.status
    if source == "response_time":
        return exchange.elapsed_ms
    if source == "response_text":
        return exchange.response_text
    if source == "response_size":
        return len(exchange.response_text.encode())
    if source in ("response_headers", "response_header", "headers"):
        wanted = (prop or "").lower()
        for key, value in exchange.headers.items():
            if key.lower() == wanted:
                return value
        return _MISSING
    if source == "response_json":
        return json_property(exchange.json(), prop)
    raise ValueError(f"unsupported Runscope assertion source {source!r}")


def _shown(value: Any) -> str:
    return "<absent>" if value is _MISSING else json.dumps(value, default=str)[:300]


def send(client: httpx.Client, method: str, url: str, headers: dict[str, str], body: str | None) -> Exchange:
    content = body.encode() if body else None
    started = time.perf_counter()
    response = client.request(method, url, headers=headers, content=content)
    elapsed = (time.perf_counter() - started) * 1000
    return Exchange(method, url, body, response.status_code, response.text, elapsed, dict(response.headers))


def run_suite(
    suite: dict[str, Any] | Path,
    client: httpx.Client,
    variables: Mapping[str, Any],
    *,
    scripts: Mapping[int, ScriptCheck] | None = None,
    overrides: Mapping[int, StepOverride] | None = None,
) -> Report:
    """Run every request step of a Runscope export; return a per-assertion report.

    `scripts` maps a step index to the Python form of that step's JavaScript; `overrides` maps a step index
    to a callable run *instead of* the step's request (for steps aimed at another system than SCIM).
    """
    if isinstance(suite, Path):
        suite = json.loads(suite.read_text())
    scripts = scripts or {}
    overrides = overrides or {}
    report = Report(str(suite.get("name", "runscope suite")))
    env: dict[str, Any] = dict(variables)
    for index, step in enumerate(suite["steps"]):
        if step.get("skipped") or step.get("step_type") != "request":
            report.skipped_steps.append(index)
            continue
        note = str(step.get("note") or f"{step.get('method')} {step.get('url')}").strip()
        if index in overrides:
            for description, passed, actual in overrides[index](StepContext(index, step, env, client)):
                report.results.append(AssertionResult(index, note, description, passed, actual, None))
            continue
        url = substitute(step["url"], env)
        body = step.get("body")
        exchange = send(
            client,
            step["method"],
            url,
            _headers(step.get("headers"), env),
            substitute(body, env) if body else None,
        )
        for assertion in step.get("assertions", []):
            source = assertion["source"]
            prop = assertion.get("property")
            raw_expected = assertion.get("value")
            expected = None if raw_expected is None else substitute(str(raw_expected), env)
            actual = _source_value(source, prop, exchange)
            passed = compare(assertion["comparison"], actual, expected)
            where = source + (f" {prop}" if prop else "")
            description = f"{where} {assertion['comparison']}" + (
                f" {expected!r}" if expected is not None else ""
            )
            report.results.append(AssertionResult(index, note, description, passed, _shown(actual), exchange))
        for capture in step.get("variables", []):
            name = capture.get("name")
            if not name:
                continue
            value = _source_value(capture["source"], capture.get("property"), exchange)
            if value is not _MISSING:
                env[name] = value
        code = [s for s in step.get("scripts", []) if s and s.strip()]
        if code and index not in scripts:
            report.results.append(
                AssertionResult(index, note, "embedded script has no Python equivalent", False, "", exchange)
            )
        elif index in scripts:
            for description, passed, actual in scripts[index](exchange):
                report.results.append(AssertionResult(index, note, description, passed, actual, exchange))
    report.variables = env
    return report


def groups_endpoint_script(exchange: Exchange) -> list[tuple[str, bool, str]]:
    """Step 18 of Okta's SPEC test, in Python.

    The JavaScript parses the body, then accepts `totalResults === 0` ("No Groups found") or
    `totalResults >= 1` with `Resources` an array; a body that does not parse throws (failure).
    """
    data = exchange.json()
    if not isinstance(data, dict):
        return [("script: body is JSON", False, exchange.response_text[:200])]
    total = data.get("totalResults")
    resources = data.get("Resources")
    ok = (_is_number(total) and total == 0) or (
        _is_number(total) and total >= 1 and isinstance(resources, list)
    )
    shown = f"totalResults={_shown(total)}, Resources is {type(resources).__name__}"
    return [("script: totalResults is 0, or >= 1 with Resources an array", ok, shown)]
