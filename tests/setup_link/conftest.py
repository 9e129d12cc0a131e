"""A real headless Chromium for the setup page's tests, from tests/browser.py (which installs
Debian's `chromium` when missing and launches it). Every page records its console errors,
uncaught exceptions and dialogs; a test checks them (`page_errors`), and a dialog fails it.
Screenshots go to ./artifacts (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser import BrowserErrors, launch, open_page, screenshot
from tests.live.server import LiveServer, live_server

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def server(database_url: str, tenant_id: str) -> Iterator[LiveServer]:
    """A real `provisor serve` on the parametrised database. Requested before the browser: while
    Playwright's synchronous API is active its event loop runs in this thread, so the database
    set-up (`asyncio.run`) must happen first; inside tests the CLI does the rest."""
    with live_server(database_url, tenant_id) as running:
        yield running


@pytest.fixture
def browser(server: LiveServer) -> Iterator[Browser]:
    with sync_playwright() as driver:
        launched = launch(driver)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def opened(browser: Browser, request: pytest.FixtureRequest) -> Iterator[tuple[Page, BrowserErrors]]:
    with open_page(browser, viewport=(1280, 720)) as (page, errors):
        yield page, errors
        name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
        screenshot(page, name, ARTIFACTS)
    assert errors.dialogs == [], f"a dialog opened (script ran?): {errors.dialogs}"


@pytest.fixture
def page(opened: tuple[Page, BrowserErrors]) -> Page:
    return opened[0]


@pytest.fixture
def page_errors(opened: tuple[Page, BrowserErrors]) -> BrowserErrors:
    return opened[1]
