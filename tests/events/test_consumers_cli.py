"""The real console script: `provisor consumers ...` and `provisor deprovisioning list`."""

from __future__ import annotations

import orjson

from tests.events.support import bearer, client, head, mint
from tests.events.test_cli import cli

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def test_consumers_commit_show_list_delete(database_url: str, tenant_id: str) -> None:
    name = f"cli-{tenant_id}"
    start = head(database_url)
    assert cli(
        database_url, "consumers", "commit", name, str(start), "--tenant", tenant_id
    ).stdout.strip() == (f"{name} at seq {start}")
    shown = orjson.loads(cli(database_url, "consumers", "show", name).stdout)
    assert (shown["seq"], shown["tenant"]) == (start, tenant_id)
    assert name in cli(database_url, "consumers", "list").stdout
    beyond = cli(database_url, "consumers", "commit", name, str(head(database_url) + 5), ok=False)
    assert beyond.returncode == 2 and "outside the log" in beyond.stderr and "Traceback" not in beyond.stderr
    if start > 0:
        behind = cli(database_url, "consumers", "commit", name, str(start - 1), ok=False)
        assert behind.returncode == 1 and "force" in behind.stderr
    unknown = cli(database_url, "consumers", "show", "no-such-consumer", ok=False)
    assert unknown.returncode == 2 and "consumers list" in unknown.stderr
    assert cli(database_url, "consumers", "delete", name).stdout.strip() == f"deleted {name}"
    assert cli(database_url, "consumers", "delete", name, ok=False).returncode == 2


def test_deprovisioning_list_names_the_consumers_that_have_not_acknowledged(
    database_url: str, tenant_id: str
) -> None:
    name = f"hr-{tenant_id}"
    cli(database_url, "consumers", "commit", name, str(head(database_url)), "--tenant", tenant_id)
    scim = mint(database_url, tenant_id)
    with client(database_url) as c:
        uid = c.post(
            "/scim/v2/Users", json={"schemas": [USER], "userName": "leaver"}, headers=bearer(scim)
        ).json()["id"]
        assert c.delete(f"/scim/v2/Users/{uid}", headers=bearer(scim)).status_code == 204
    cli(database_url, "tenant", "set", tenant_id, "deprovision_ack_threshold_seconds=1")
    import time

    time.sleep(1.1)
    out = cli(database_url, "deprovisioning", "list", "--tenant", tenant_id).stdout
    assert f"{uid}  waiting for {name}" in out and "1 unacknowledged after 1s" in out
    cli(database_url, "consumers", "commit", name, str(head(database_url)))
    after = cli(database_url, "deprovisioning", "list", "--tenant", tenant_id).stdout
    assert "0 unacknowledged after 1s" in after and uid not in after
    report = orjson.loads(
        cli(database_url, "deprovisioning", "list", "--tenant", tenant_id, "--all", "--json").stdout
    )
    assert report["events"][0]["acks"][name] is not None and report["timeToRevoke"][name]["count"] == 1
    missing = cli(database_url, "deprovisioning", "list", "--tenant", "no-such-tenant", ok=False)
    assert missing.returncode == 2
    cli(database_url, "consumers", "delete", name)
