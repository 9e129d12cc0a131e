"""A real headless Chromium for tests, driven by Playwright (no Playwright browser download:
Debian's `chromium` package is used, installed here when missing).

    from tests.browser import browser_page, BrowserErrors
    with browser_page(artifacts_dir) as (page, errors):
        page.goto(url)
        ...
        errors.assert_none()

`BrowserErrors` collects console errors and uncaught page errors, so a test can assert that no
page logged a JavaScript error (a CSP violation is reported as a console error too).
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


def ensure_chromium() -> str:
    """The Chromium binary; installs Debian's package when it is missing and we are root, and
    fails loudly otherwise (a browser test must not pass without a browser)."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(
            f"{CHROMIUM} is missing: install it (as root) with "
            "`apt-get update && apt-get install -y chromium`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    subprocess.run(["apt-get", *lock, "update"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", *lock, "install", "-y", "chromium"], check=True, env=env, capture_output=True)
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


@dataclass
class BrowserErrors:
    messages: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.messages.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))

    def assert_none(self) -> None:
        assert self.messages == [], "JavaScript errors:\n" + "\n".join(self.messages)


@contextmanager
def browser_page(viewport: tuple[int, int] = (1280, 900)) -> Iterator[tuple[Any, BrowserErrors]]:
    """A fresh browser context and page, with error collection."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            page = context.new_page()
            errors = BrowserErrors()
            errors.watch(page)
            yield page, errors
            context.close()
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
