"""A real headless Chromium for the setup page's tests, driven by Playwright.

Debian's `chromium` is used (no browser download): when /usr/bin/chromium is missing the set-up
installs it with apt-get, and fails loudly if that is impossible. Every page records its console
errors and uncaught exceptions; a test that leaves any fails. Screenshots go to ./artifacts
(git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, sync_playwright

from tests.live.server import LiveServer, live_server

CHROMIUM = Path("/usr/bin/chromium")
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
ARTIFACTS = Path(__file__).parent / "artifacts"


def _ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail("/usr/bin/chromium is missing and apt-get is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update"], [apt, "install", "-y", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        if done.returncode != 0:
            pytest.fail(f"cannot install chromium ({' '.join(command)}): {done.stderr[-1500:]}")
    if not CHROMIUM.exists():
        pytest.fail("apt-get installed chromium but /usr/bin/chromium is still missing")
    return CHROMIUM


@pytest.fixture
def server(database_url: str, tenant_id: str) -> Iterator[LiveServer]:
    """A real `provisor serve` on the parametrised database. Requested before `page`: while
    Playwright's synchronous API is active its event loop runs in this thread, so the database
    set-up (`asyncio.run`) must happen first; inside tests the CLI does the rest."""
    with live_server(database_url, tenant_id) as running:
        yield running


@pytest.fixture
def playwright(server: LiveServer) -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = _ensure_chromium()
    launched = playwright.chromium.launch(executable_path=str(executable), headless=True, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


class PageErrors:
    """Console errors and page errors seen by one page."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.dialogs: list[str] = []

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text}")

    def page_error(self, error: Error) -> None:
        self.messages.append(f"pageerror: {error}")


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(browser: Browser, page_errors: PageErrors, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    opened.on("console", page_errors.console)
    opened.on("pageerror", page_errors.page_error)

    def dialog(d: object) -> None:
        page_errors.dialogs.append(str(getattr(d, "message", d)))
        getattr(d, "dismiss")()  # noqa: B009

    opened.on("dialog", dialog)
    yield opened
    ARTIFACTS.mkdir(exist_ok=True)
    name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
    try:
        opened.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert page_errors.dialogs == [], f"a dialog opened (script ran?): {page_errors.dialogs}"
