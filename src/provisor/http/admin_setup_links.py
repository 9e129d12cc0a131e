"""Setup links over the admin API (admin tokens only; docs/setup-link.md).

- `POST /setup-links` with `{"tenant": T, "expires_in": "7d"}`: 201 with the link and its `url`
  (the only time the secret is shown); 400 for an unknown tenant or a bad lifetime.
- `GET /setup-links?tenant=T`: `{"setup_links": [...]}`, never with secrets.
- `DELETE /setup-links/{id}`: 204; 404 when no live link has that id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from provisor.errors import invalid_value, not_found
from provisor.service import setup_links

if TYPE_CHECKING:
    from provisor.container import Provisor

Guard = Callable[[Request, Callable[[], Awaitable[Response]]], Awaitable[Response]]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def setup_link_routes(provisor: Provisor, guarded: Guard) -> list[Route]:
    engine = provisor.engine

    def base_url(request: Request) -> str:
        return provisor.settings.base_url or str(request.base_url)

    async def collection(request: Request) -> Response:
        async def create() -> Response:
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise invalid_value("the body must be a JSON object") from None
            if not isinstance(body, dict) or not isinstance(body.get("tenant"), str):
                raise invalid_value('the body must be {"tenant": "<tenant>", "expires_in": "7d"}')
            expires_in = body.get("expires_in", "7d")
            try:
                lifetime = setup_links.parse_lifetime(str(expires_in))
                made = await setup_links.create(engine, body["tenant"], base_url(request), lifetime)
            except (setup_links.BadLifetime, setup_links.UnknownTenant) as exc:
                raise invalid_value(str(exc)) from None
            return _json({**setup_links.describe(made.link), "url": made.url}, 201)

        async def listing() -> Response:
            links = await setup_links.list_links(engine, request.query_params.get("tenant") or None)
            return _json({"setup_links": [setup_links.describe(link) for link in links]})

        return await guarded(request, create if request.method == "POST" else listing)

    async def one(request: Request) -> Response:
        async def revoke() -> Response:
            if not await setup_links.revoke(engine, request.path_params["link_id"]):
                raise not_found(f"no live setup link {request.path_params['link_id']}")
            return Response(status_code=204)

        return await guarded(request, revoke)

    return [
        Route("/setup-links", collection, methods=["GET", "POST"]),
        Route("/setup-links/{link_id}", one, methods=["DELETE"]),
    ]
