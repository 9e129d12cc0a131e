"""examples/webhook_receiver.py over real HTTP: Provisor's worker delivers, the receiver's table follows.

The receiver runs under uvicorn in a thread on 127.0.0.1; Provisor runs in-process with
`webhooks_enabled=True`, so its lifespan runs the delivery worker. A tap around the receiver
records every delivery and can turn the receiver's answer into a 500 *after* it committed (a lost
acknowledgement), which makes Provisor send the same event again.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from examples.webhook_receiver import (
    Verifier,
    create_receiver_app,
    verify_signature_stdlib,
    verify_with_provisor,
)
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import provisor
from provisor.cli import main as provisor_cli
from provisor.config import Settings
from provisor.events import sign, verify_signature
from tests.scim_client import PATCH_OP, USER_URN, mint_token

T = TypeVar("T")
SECRET = "example-s3cret"


def eventually(check: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    app_status: int  # what the receiver answered
    app_answer: dict[str, Any]
    sent_status: int  # what Provisor got (500 when the tap "lost" the acknowledgement)

    @property
    def event(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


@dataclass
class Tap:
    """ASGI wrapper recording each `POST /provisioning`; loses the first `lose_acks` 2xx answers."""

    app: ASGIApp
    lose_acks: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/provisioning":
            await self.app(scope, receive, send)
            return
        body, answer = bytearray(), bytearray()
        statuses = [0, 0]

        async def tapped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def tapped_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses[0] = statuses[1] = message["status"]
                with self.lock:
                    if self.lose_acks and message["status"] < 300:
                        self.lose_acks -= 1
                        statuses[1] = 500
                        message = {**message, "status": 500}
            elif message["type"] == "http.response.body":
                answer.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, tapped_receive, tapped_send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        delivery = Delivery(headers, bytes(body), statuses[0], json.loads(answer or b"{}"), statuses[1])
        with self.lock:
            self.deliveries.append(delivery)

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)


@contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[str]:
    """Run `app` under uvicorn in a thread on a free 127.0.0.1 port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        eventually(lambda: True if server.started else None, timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def accounts(base: str) -> dict[str, dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(f"{base}/accounts", timeout=5).json()["accounts"]
    return {row["scim_id"]: row for row in rows}


def add_webhook(database_url: str, url: str, tenant_id: str) -> None:
    """Register the receiver exactly as its docstring says: `provisor webhook add URL --secret S`."""
    args = ["webhook", "add", url, "--secret", SECRET, "--tenant", tenant_id, "--database-url", database_url]
    result = CliRunner().invoke(provisor_cli, args)
    assert result.exit_code == 0, result.output


def patch_active(scim: TestClient, uid: str, headers: dict[str, str], value: bool) -> None:
    op = {"op": "replace", "path": "active", "value": value}
    response = scim.patch(
        f"/scim/v2/Users/{uid}", json={"schemas": [PATCH_OP], "Operations": [op]}, headers=headers
    )
    assert response.status_code == 200, response.text


def test_receiver_follows_provisor_webhooks(database_url: str, tenant_id: str, app_database_url: str) -> None:
    tap = Tap(create_receiver_app(app_database_url, SECRET), lose_acks=1)
    token = mint_token(database_url, tenant_id)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    settings = Settings(database_url=database_url, webhooks_enabled=True, webhook_lease_seconds=15)
    with serve_in_thread(tap) as base, TestClient(provisor.create_app(settings)) as scim:
        add_webhook(database_url, f"{base}/provisioning", tenant_id)

        created = scim.post(
            "/scim/v2/Users",
            json={"schemas": [USER_URN], "userName": "lin", "emails": [{"value": "lin@example.com"}]},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        uid = created.json()["id"]
        row = eventually(lambda: accounts(base).get(uid))
        assert (row["user_name"], row["email"], row["active"]) == ("lin", "lin@example.com", True)

        # The first answer was lost (Provisor saw a 500), so Provisor sends "created" again; the
        # receiver recognises the event id and does not apply it a second time.
        def redelivered() -> list[Delivery] | None:
            got = tap.snapshot()
            return got if len(got) >= 2 else None

        first, second = eventually(redelivered)[:2]
        assert first.event["id"] == second.event["id"] and first.event["op"] == "created"
        assert (first.app_status, first.sent_status, first.app_answer["status"]) == (200, 500, "applied")
        assert (second.app_status, second.sent_status, second.app_answer["status"]) == (200, 200, "duplicate")
        assert second.headers["provisor-event-id"] == second.event["id"]

        patch_active(scim, uid, headers, False)
        eventually(lambda: True if accounts(base)[uid]["active"] is False else None)

        assert scim.delete(f"/scim/v2/Users/{uid}", headers=headers).status_code == 204
        eventually(lambda: True if uid not in accounts(base) else None)

        done = tap.snapshot()
        assert [(d.event["op"], d.app_answer["status"]) for d in done] == [
            ("created", "applied"),
            ("created", "duplicate"),
            ("deactivated", "applied"),
            ("deleted", "applied"),
        ]

        # A late redelivery of "created" (e.g. after `provisor webhook redrive`), freshly signed, is
        # still a duplicate: without de-duplication it would bring the deleted account back.
        replay = httpx.post(
            f"{base}/provisioning",
            content=first.body,
            headers={"Content-Type": "application/json", "Provisor-Signature": sign(SECRET, first.body)},
        )
        assert replay.status_code == 200 and replay.json()["status"] == "duplicate"

        # A captured delivery with its body altered no longer matches its signature: 401, no change.
        deactivated = done[2]
        tampered = deactivated.body.replace(b'"active":false', b'"active":true')
        assert tampered != deactivated.body
        forged = httpx.post(
            f"{base}/provisioning",
            content=tampered,
            headers={
                "Content-Type": "application/json",
                "Provisor-Signature": deactivated.headers["provisor-signature"],
            },
        )
        assert forged.status_code == 401
        assert uid not in accounts(base)


def forged_event(tenant_id: str, seq: int) -> bytes:
    event = {
        "id": f"{tenant_id}:{seq}",
        "seq": seq,
        "tenant": tenant_id,
        "at": "2026-01-01T00:00:00Z",
        "resourceType": "User",
        "resourceId": f"forged-{seq}",
        "op": "created",
        "version": 1,
        "actor": None,
        "payload": {"schemas": [USER_URN], "id": f"forged-{seq}", "userName": "mallory", "active": True},
    }
    return json.dumps(event).encode()


@pytest.mark.parametrize(
    "verify", [verify_with_provisor, verify_signature_stdlib], ids=["provisor", "stdlib"]
)
def test_forged_or_stale_signatures_get_401_and_change_nothing(
    app_database_url: str, tenant_id: str, verify: Verifier
) -> None:
    with TestClient(create_receiver_app(app_database_url, SECRET, verify=verify)) as rx:
        body = forged_event(tenant_id, 1)
        now = int(time.time())
        rejected = [
            {},
            {"Provisor-Signature": sign("wrong-secret", body)},
            {"Provisor-Signature": "t=abc,v1=00"},
            {"Provisor-Signature": sign(SECRET, body, timestamp=now - 3600)},  # a replay, too old
            {"Provisor-Signature": sign(SECRET, body + b" ")},  # signed different bytes
        ]
        for headers in rejected:
            response = rx.post("/provisioning", content=body, headers=headers)
            assert response.status_code == 401, (headers, response.text)
        assert rx.get("/accounts").json() == {"accounts": []}

        # The rejected attempts did not mark the event id as seen: the genuine one is applied.
        genuine = rx.post("/provisioning", content=body, headers={"Provisor-Signature": sign(SECRET, body)})
        assert genuine.status_code == 200 and genuine.json()["status"] == "applied", genuine.text
        again = rx.post("/provisioning", content=body, headers={"Provisor-Signature": sign(SECRET, body)})
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert [a["user_name"] for a in rx.get("/accounts").json()["accounts"]] == ["mallory"]


def test_stdlib_verification_agrees_with_provisor() -> None:
    body = b'{"id":"acme:1"}'
    now = int(time.time())
    cases = [
        sign("k", body),
        sign("k", body) + ",v1=" + "0" * 64,  # rotation: any v1 may match
        sign("other", body),
        sign("k", body, timestamp=now - 301),
        sign("k", body, timestamp=now + 301),
        "t=1,v1=",
        "",
    ]
    for header in cases:
        assert verify_signature_stdlib("k", header, body) == verify_signature("k", header, body), header


def receiver_rows(base: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = httpx.get(f"{base}/accounts", timeout=5).json()["accounts"]
    return rows


def test_same_user_id_in_two_tenants_stays_two_accounts(
    database_url: str, app_database_url: str, tmp_path: Path
) -> None:
    """`provisor export` / `import` copies a user into another tenant with the same id; deleting the copy
    must not delete the original's account: the receiver keys accounts by tenant and id."""
    home, copy = (f"t-{uuid.uuid4().hex[:12]}" for _ in range(2))
    tokens = {tenant: mint_token(database_url, tenant) for tenant in (home, copy)}
    settings = Settings(database_url=database_url, webhooks_enabled=True, webhook_lease_seconds=15)
    with (
        serve_in_thread(create_receiver_app(app_database_url, SECRET)) as base,
        TestClient(provisor.create_app(settings)) as scim,
    ):
        for tenant in (home, copy):
            add_webhook(database_url, f"{base}/provisioning", tenant)
        headers = {"Authorization": f"Bearer {tokens[home]}", "Content-Type": "application/scim+json"}
        user = {"schemas": [USER_URN], "userName": "grace", "emails": [{"value": "grace@example.com"}]}
        created = scim.post("/scim/v2/Users", json=user, headers=headers)
        assert created.status_code == 201, created.text
        uid = created.json()["id"]

        exported = CliRunner().invoke(
            provisor_cli, ["export", "--tenant", home, "--database-url", database_url]
        )
        assert exported.exit_code == 0, exported.output
        dump = tmp_path / "users.jsonl"
        dump.write_text(exported.stdout)
        args = ["import", str(dump), "--tenant", copy, "--database-url", database_url]
        imported = CliRunner().invoke(provisor_cli, args)
        assert imported.exit_code == 0, imported.output
        headers["Authorization"] = f"Bearer {tokens[copy]}"
        assert scim.get(f"/scim/v2/Users/{uid}", headers=headers).status_code == 200

        both = {(home, uid), (copy, uid)}
        eventually(
            lambda: True if {(r.get("tenant"), r["scim_id"]) for r in receiver_rows(base)} == both else None
        )

        assert scim.delete(f"/scim/v2/Users/{uid}", headers=headers).status_code == 204
        eventually(lambda: True if len(receiver_rows(base)) == 1 else None)
        (left,) = receiver_rows(base)
        assert (left["tenant"], left["scim_id"], left["user_name"]) == (home, uid, "grace")
