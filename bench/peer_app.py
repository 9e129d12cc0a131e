"""ASGI entry point for the comparison server, scim2-server.

It runs inside `bench/.peer-venv`, not in Provisor's venv.

scim2-server keeps its resources in one process's memory, so it can only be served by ONE worker: a
second worker would hold a different, empty store. Its own `scim2-server` command uses the stdlib
threaded `wsgiref` server; we serve its ASGI application under uvicorn instead, which is the faster
and fairer choice. Seeding happens in-process before serving (there is no database to bulk-load):

    BENCH_PEER_SEED=/path/seed.json BENCH_PEER_TOKEN=secret uvicorn bench.peer_app:app --port P

`seed.json` = {"users": [{"userName": ..., ...}, ...], "groups": [{"displayName": ..., "members": N}],
"ids_out": "/path/ids.json"}; the ids the server generated are written to `ids_out`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from scim2_models import UnauthorizedException
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage, InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.utils import load_default_provider


class BearerASGIApplication(ASGIApplication):  # type: ignore[misc]  # untyped: lives in the peer venv
    """scim2-server's ASGI app with the same static bearer-token check its CLI applies."""

    tokens: frozenset[str] = frozenset()

    def check_auth(self, request: Any) -> None:
        if not self.tokens:
            return
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            raise UnauthorizedException


def _seed(storage: InMemoryStorage, service: ScimService, spec: dict[str, Any]) -> dict[str, Any]:
    provider = service.provider
    rts = {rt.name: rt for rt in provider.resource_types}
    user_rt, group_rt = rts["User"], rts["Group"]
    user_model = service.get_model(user_rt)
    group_model = service.get_model(group_rt)
    users: list[list[str]] = []
    for body in spec["users"]:
        created = storage.create(user_rt, user_model.model_validate(body))
        users.append([created.id, body["userName"]])
    groups: dict[str, str] = {}
    offset = 0
    for group in spec.get("groups", []):
        n = int(group["members"])
        members = [{"value": uid, "type": "User"} for uid, _ in users[offset : offset + n]]
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": group["displayName"],
            "members": members,
        }
        created = storage.create(group_rt, group_model.model_validate(body))
        groups[group["displayName"]] = created.id
        group["first_member"] = offset
        offset += n
    return {
        "users": users,
        "groups": groups,
        "group_offsets": {g["displayName"]: g["first_member"] for g in spec.get("groups", [])},
    }


def build() -> BearerASGIApplication:
    provider = load_default_provider()
    service = ScimService(provider, secret=os.environ.get("BENCH_PEER_SECRET", "bench-peer-secret"))
    memory = InMemoryStorage()
    seed_path = os.environ.get("BENCH_PEER_SEED")
    if seed_path:
        with open(seed_path) as f:
            spec = json.load(f)
        started = time.perf_counter()
        out = _seed(memory, service, spec)
        out["seconds"] = time.perf_counter() - started
        with open(spec["ids_out"] + ".tmp", "w") as f:
            json.dump(out, f)
        os.replace(spec["ids_out"] + ".tmp", spec["ids_out"])
    application = BearerASGIApplication(AsyncInMemoryStorage(memory), provider, service)
    token = os.environ.get("BENCH_PEER_TOKEN")
    application.tokens = frozenset({token} if token else set())
    return application


app = build()
