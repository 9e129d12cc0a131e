"""One real `provisor serve` per database for the console tests, with an admin token and a tenant.

Webhook deliveries are given a single attempt, so a delivery to a closed port is dead at once and
the dead-letter and redrive paths can be driven from the browser.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.live.server import live_server
from tests.scim_client import mint_token


@dataclass
class Console:
    root: str  # http://127.0.0.1:PORT
    admin: str  # an admin token's secret
    scim_token: str  # the tenant's SCIM token
    tenant: str
    database_url: str

    @property
    def scim(self) -> str:
        return f"{self.root}/scim/v2"

    def scim_headers(self, token: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token or self.scim_token}",
            "Content-Type": "application/scim+json",
        }

    @contextmanager
    def signed_in(self) -> Iterator[httpx.Client]:
        """An httpx client holding a console session."""
        with httpx.Client(base_url=self.root, follow_redirects=False, timeout=10) as client:
            response = client.post("/console/login", data={"token": self.admin})
            assert response.status_code == 303, response.text
            yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


@pytest.fixture(scope="module", params=BACKENDS)
def console(request: pytest.FixtureRequest) -> Iterator[Console]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    tenant = f"c-{uuid.uuid4().hex[:10]}"
    admin = mint_token(url, None, kind="admin", name="console-admin")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROVISOR_WEBHOOK_MAX_ATTEMPTS", "1")
        with live_server(url, tenant) as server:
            yield Console(server.base_url.removesuffix("/scim/v2"), admin, server.token, tenant, url)
