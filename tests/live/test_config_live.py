"""Settings reach the serving workers as parsed: `PROVISOR_WEBHOOKS_ENABLED=off` really turns webhooks off."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.events.support import eventually, receiver
from tests.live.server import live_server
from tests.live.test_cli_errors import assert_short_error, run

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.mark.parametrize(("value", "delivers"), [("off", False), ("On", True)])
def test_webhooks_enabled_is_parsed_like_every_boolean(
    database_url: str, tenant_id: str, value: str, delivers: bool
) -> None:
    env = {"PROVISOR_WEBHOOKS_ENABLED": value, "PROVISOR_WEBHOOK_POLL_SECONDS": "0.05"}
    with receiver() as hook, live_server(database_url, tenant_id, workers=2, env=env) as server:
        added = run("webhook", "add", hook.url, "--tenant", tenant_id, "--database-url", database_url)
        assert added.returncode == 0, added.stderr
        made = httpx.post(
            f"{server.base_url}/Users", json={"schemas": [USER], "userName": "ada"}, headers=server.headers
        )
        assert made.status_code == 201, made.text
        if delivers:
            eventually(lambda: hook.received or None)
        else:
            time.sleep(2.0)  # ten times the poll interval: a running delivery worker would have sent it
            assert hook.received == []


def test_a_bad_boolean_stops_serve_naming_the_variable() -> None:
    result = run("serve", env={"PROVISOR_WEBHOOKS_ENABLED": "sometimes"})
    assert_short_error(result, 2, "PROVISOR_WEBHOOKS_ENABLED", "true or false")
