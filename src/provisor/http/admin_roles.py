"""Group-to-role mappings under `/admin/v1` (admin tokens only; docs/roles.md).

- `GET /roles?tenant=T`: the mappings.
- `PUT /roles?tenant=T&group=G&role=R`: map (201 when new, 200 when it existed); `DELETE` unmaps
  (204, or 404). `G` is a group id or displayName. Both answer before a large group's members
  have their events: the jobs run in the background.
- `GET /roles/jobs?tenant=T`: the background jobs and their progress.
- `GET /users/{id}/roles?tenant=T`: a user's effective roles and the groups granting each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from provisor.errors import invalid_value, not_found
from provisor.service import roles

if TYPE_CHECKING:
    from provisor.container import Provisor

Guard = Callable[[Request, Callable[[], Awaitable[Response]]], Awaitable[Response]]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise invalid_value(f"the {name} query parameter is required (?{name}=...)")
    return value


def role_routes(provisor: Provisor, guarded: Guard) -> list[BaseRoute]:
    engine = provisor.engine
    batch = provisor.settings.role_job_batch

    async def listing(request: Request) -> Response:
        async def work() -> Response:
            found = await roles.mappings(engine, _param(request, "tenant"))
            return _json({"mappings": [roles.mapping_json(m) for m in found]})

        return await guarded(request, work)

    async def change(request: Request) -> Response:
        async def work() -> Response:
            tenant, group, role = (_param(request, n) for n in ("tenant", "group", "role"))
            add = request.method == "PUT"
            result = await roles.change_mapping(engine, tenant, group, role, add=add, batch=batch)
            provisor.events.wake()
            if not add:
                if not result.changed:
                    raise not_found(f"no mapping of group {group} to role {role} in tenant {tenant}")
                return Response(status_code=204)
            body = {**roles.mapping_json(result.mapping), "jobs": [roles.job_json(j) for j in result.jobs]}
            return _json(body, 201 if result.changed else 200)

        return await guarded(request, work)

    async def job_listing(request: Request) -> Response:
        async def work() -> Response:
            found = await roles.jobs(engine, _param(request, "tenant"))
            return _json({"jobs": [roles.job_json(j) for j in found]})

        return await guarded(request, work)

    async def user_roles(request: Request) -> Response:
        async def work() -> Response:
            found = await roles.user_roles(engine, _param(request, "tenant"), request.path_params["user_id"])
            return _json(roles.roles_json(found))

        return await guarded(request, work)

    return [
        Route("/roles", listing, methods=["GET"]),
        Route("/roles", change, methods=["PUT", "DELETE"]),
        Route("/roles/jobs", job_listing, methods=["GET"]),
        Route("/users/{user_id}/roles", user_roles, methods=["GET"]),
    ]
