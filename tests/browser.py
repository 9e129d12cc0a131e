"""The one place tests get a real headless Chromium, driven by Playwright (no Playwright browser
download: Debian's `chromium` package is used, installed here when missing).

    from tests.browser import browser_page
    with browser_page() as (page, errors):
        page.goto(url)
        ...
        errors.assert_none()

A test that manages Playwright itself (tests/setup_link/conftest.py starts it after its server)
uses `launch(playwright)` and `open_page(browser)` instead. `BrowserErrors` collects console
errors, uncaught page errors and dialogs, so a test can assert that no page logged a JavaScript
error (a CSP violation is reported as a console error too) and that no script from data ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots and other browser artifacts (git-ignored).
ARTIFACTS = Path(__file__).parent / "artifacts"
#: How Chromium logs a document or fetch answered with an error status: a console error that is
#: the expected refusal itself, not a script error (see `refused_loads`).
FAILED_LOAD = "console: Failed to load resource: the server responded with a status of"


def ensure_chromium() -> str:
    """The Chromium binary; installs Debian's package when it is missing, and fails loudly when
    that is impossible (a browser test must not pass without a browser)."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(
            f"{CHROMIUM} is missing: install it (as root) with "
            "`apt-get update && apt-get install -y chromium`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    for command in ([apt, *lock, "update"], [apt, *lock, "install", "-y", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"cannot install chromium ({' '.join(command)}): {done.stderr[-1500:]}")
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


def refused_loads(*statuses: int) -> tuple[str, ...]:
    """Message prefixes for pages or fetches a test expects to be answered with these statuses."""
    return tuple(f"{FAILED_LOAD} {status}" for status in statuses)


@dataclass
class BrowserErrors:
    messages: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.messages.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        """A dialog means a script ran (e.g. `alert` from markup in data): recorded, dismissed."""
        self.dialogs.append(str(dialog.message))
        dialog.dismiss()

    def unexpected(self, *allowed: str) -> list[str]:
        """The messages that start with none of the `allowed` prefixes (e.g. `refused_loads(410)`)."""
        return [m for m in self.messages if not m.startswith(allowed)] if allowed else list(self.messages)

    def assert_none(self, *allowed: str) -> None:
        unexpected = self.unexpected(*allowed)
        assert unexpected == [], "JavaScript errors:\n" + "\n".join(unexpected)
        assert self.dialogs == [], f"a dialog opened (a script ran from data?): {self.dialogs}"


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless, under a running Playwright."""
    return playwright.chromium.launch(executable_path=ensure_chromium(), args=CHROMIUM_ARGS, headless=True)


@contextmanager
def open_page(browser: Any, viewport: tuple[int, int] = (1280, 900)) -> Iterator[tuple[Any, BrowserErrors]]:
    """A fresh browser context and page of `browser`, with error collection."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = context.new_page()
        errors = BrowserErrors()
        errors.watch(page)
        yield page, errors
    finally:
        context.close()


@contextmanager
def browser_page(viewport: tuple[int, int] = (1280, 900)) -> Iterator[tuple[Any, BrowserErrors]]:
    """Playwright, a browser and one fresh page, all closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            with open_page(browser, viewport) as opened:
                yield opened
        finally:
            browser.close()


def screenshot(page: Any, name: str, directory: Path = ARTIFACTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
