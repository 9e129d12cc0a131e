"""Webhooks with `--format set`: a Security Event Token per RFC 8417 / RFC 9967 (SCIM profile),
compact JWS signed HS256 with the webhook secret, or unsecured (`alg: none`) without one."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson

from provisor.events import verify_signature
from provisor.events.webhooks import WebhookWorker, WorkerConfig
from provisor.storage import webhooks as store
from provisor.storage.transactions import write_transaction
from tests.events.support import Receiver, bearer, client, mint, receiver, run_db

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PROV = "urn:ietf:params:scim:event:prov:"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_jws(token: bytes, secret: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS; checks the HS256 MAC with `secret`, or that the token is
    unsecured when `secret` is None. Only the stdlib, as a receiver without a JOSE library would."""
    text = token.decode("ascii")
    parts = text.split(".")
    assert len(parts) == 3, text
    header, claims = orjson.loads(b64url_decode(parts[0])), orjson.loads(b64url_decode(parts[1]))
    assert header["typ"] == "secevent+jwt"
    if secret is None:
        assert header["alg"] == "none" and parts[2] == ""
    else:
        assert header["alg"] == "HS256"
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        expected = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
        assert hmac.compare_digest(b64url_decode(parts[2]), expected)
        wrong = hmac.new(b"other", signing_input, hashlib.sha256).digest()
        assert not hmac.compare_digest(b64url_decode(parts[2]), wrong)
    assert all("=" not in p for p in parts)  # base64url without padding
    return header, claims


def add_set_hook(url: str, target: str, tenant: str, secret: str) -> str:
    async def work(engine: Any) -> str:
        async with write_transaction(engine) as conn:
            hook = await store.add_webhook(conn, url=target, secret=secret, tenant_id=tenant, format="set")
        return hook.id

    result: str = run_db(url, work)
    return result


def remove_hook(url: str, hook_id: str) -> None:
    async def work(engine: Any) -> None:
        async with write_transaction(engine) as conn:
            await store.remove_webhook(conn, hook_id)

    run_db(url, work)


def deliver_all(url: str, rx: Receiver, count: int) -> None:
    async def main() -> None:
        from provisor.storage.engine import create_engine

        engine = create_engine(url)
        worker = WebhookWorker(engine, WorkerConfig())
        async with httpx.AsyncClient() as http:
            for _ in range(400):
                await worker.run_once(http)
                if len(rx.received) >= count:
                    break
                await asyncio.sleep(0.05)
        await engine.dispose()

    asyncio.run(main())


def lifecycle(url: str, tenant: str) -> tuple[str, str]:
    """Create a user, deactivate it (PATCH), PUT it, add it to a group, delete it."""
    scim = mint(url, tenant)
    with client(url) as c:
        h = bearer(scim)
        body = {"schemas": [USER], "userName": "set.user", "externalId": "ext-42"}
        uid: str = c.post("/scim/v2/Users", json=body, headers=h).json()["id"]
        off = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
        assert c.patch(f"/scim/v2/Users/{uid}", json=off, headers=h).status_code == 200
        put = {
            "schemas": [USER],
            "userName": "set.user",
            "externalId": "ext-42",
            "displayName": "Set",
            "active": False,
        }
        assert c.put(f"/scim/v2/Users/{uid}", json=put, headers=h).status_code == 200
        gid: str = c.post("/scim/v2/Groups", json={"schemas": [GROUP], "displayName": "g"}, headers=h).json()[
            "id"
        ]
        add = {
            "schemas": [PATCH],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
        }
        assert c.patch(f"/scim/v2/Groups/{gid}", json=add, headers=h).status_code in (200, 204)
        assert c.delete(f"/scim/v2/Users/{uid}", headers=h).status_code == 204
    return uid, gid


def test_set_webhook_receives_signed_rfc9967_tokens(database_url: str, tenant_id: str) -> None:
    with receiver() as rx:
        hook_id = add_set_hook(database_url, rx.url, tenant_id, "s3cret")
        try:
            began = int(time.time())
            uid, gid = lifecycle(database_url, tenant_id)
            deliver_all(database_url, rx, 7)
        finally:
            remove_hook(database_url, hook_id)
        assert len(rx.received) == 7
        seen: list[tuple[int, str, dict[str, Any], dict[str, Any]]] = []
        jtis: set[str] = set()
        for headers, raw in rx.received:
            assert headers["content-type"] == "application/secevent+jwt"
            assert verify_signature("s3cret", headers["provisor-signature"], raw)
            header, claims = decode_jws(raw, "s3cret")
            assert header == {"typ": "secevent+jwt", "alg": "HS256"}
            # RFC 8417 section 2.2 / RFC 9967 section 2: iss, iat, jti, aud, events; sub_id not sub.
            assert claims["iss"] == "provisor"
            assert isinstance(claims["iat"], int) and began - 5 <= claims["iat"] <= time.time() + 5
            assert isinstance(claims["toe"], int) and began - 5 <= claims["toe"] <= time.time() + 5
            assert claims["aud"] == rx.url
            assert "sub" not in claims
            assert claims["txn"] == headers["provisor-event-id"]  # a STRING, the same on every retry
            assert isinstance(claims["jti"], str) and claims["jti"] not in jtis
            jtis.add(claims["jti"])
            assert len(claims["events"]) == 1
            ((uri, payload),) = claims["events"].items()
            assert uri.startswith("urn:ietf:params:scim:event:prov:")
            seen.append((int(claims["txn"].rsplit(":", 1)[1]), uri, payload, claims["sub_id"]))
        seen.sort()  # deliveries for different resources may interleave; order is per resource

        assert [uri.removeprefix(PROV) for _, uri, _, _ in seen] == [
            "create:full",
            "deactivate",
            "put:full",
            "create:full",
            "patch:full",
            "patch:full",  # deleting the user removes it from the group first
            "delete",
        ]
        user_sub = {"format": "scim", "uri": f"/Users/{uid}", "id": uid, "externalId": "ext-42"}
        (_, _, create, sub0), (_, _, deactivate, sub1), (_, _, put, sub2) = seen[:3]
        assert sub0 == sub1 == sub2 == user_sub
        assert create["data"]["id"] == uid and create["data"]["userName"] == "set.user"
        assert USER in create["data"]["schemas"] and create["version"] == 'W/"1"'
        assert "data" not in deactivate and "attributes" not in deactivate
        assert put["data"]["displayName"] == "Set" and "attributes" not in put
        (_, _, group_create, gsub), (_, _, patch, psub), (_, _, removed, _), (_, _, delete, dsub) = seen[3:]
        assert gsub == psub == {"format": "scim", "uri": f"/Groups/{gid}", "id": gid}
        assert group_create["data"]["displayName"] == "g"
        assert patch["data"] == {
            "schemas": [PATCH],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
        }
        assert removed["data"]["Operations"] == [
            {"op": "remove", "path": "members", "value": [{"value": uid}]}
        ]
        # A delete event has no payload attributes (RFC 9967 section 2.4.4).
        assert delete == {} and dsub["uri"] == f"/Users/{uid}"


def test_set_webhook_without_secret_is_unsecured(database_url: str, tenant_id: str) -> None:
    with receiver() as rx:
        hook_id = add_set_hook(database_url, rx.url, tenant_id, "")
        try:
            scim = mint(database_url, tenant_id)
            with client(database_url) as c:
                c.post("/scim/v2/Users", json={"schemas": [USER], "userName": "plain"}, headers=bearer(scim))
            deliver_all(database_url, rx, 1)
        finally:
            remove_hook(database_url, hook_id)
        ((headers, raw),) = rx.received
        assert "provisor-signature" not in headers
        header, claims = decode_jws(raw, None)
        assert header == {"typ": "secevent+jwt", "alg": "none"}
        assert list(claims["events"]) == [PROV + "create:full"]
        assert claims["events"][PROV + "create:full"]["data"]["userName"] == "plain"
