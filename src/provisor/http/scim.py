"""The SCIM API under `/scim/v2`: one small dispatcher, case-insensitive resource paths.

Starlette's router is case-sensitive, but IdPs send `/users` and `/Users` alike; resolving the
two or three path segments here is simpler than registering every case and faster than regexes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from provisor.config import Settings
from provisor.errors import ScimError, invalid_value
from provisor.http import discovery
from provisor.http.auth import Authenticator
from provisor.http.body import read_json, read_object
from provisor.http.bulk import handle_bulk
from provisor.http.catalogue import handle_catalogue
from provisor.http.responses import SCIM_MEDIA_TYPE, empty, scim_json
from provisor.protocol.query import from_query_params, from_search_request, list_response
from provisor.schema.registry import CATALOGUE_TYPES, Registry
from provisor.service.context import RequestContext
from provisor.service.entitlements import CatalogueService
from provisor.service.groups import GroupService, MemberStream
from provisor.service.preconditions import etag_matches
from provisor.service.projection import Projection
from provisor.service.render import etag, location
from provisor.service.resources import ResourceService

SEARCH = ".search"


def method_not_allowed(allowed: str) -> ScimError:
    return ScimError(405, f"method not allowed here; allowed: {allowed}")


class ScimApi:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        services: dict[str, ResourceService],
        auth: Authenticator,
        catalogue: CatalogueService | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.services = services
        self.auth = auth
        self._by_segment = {
            rt.endpoint.strip("/").lower(): rt.name
            for rt in registry.resource_types.values()
            if rt.name in services
        }
        #: The read-only catalogues (docs/entitlements.md), on the services' engine unless given.
        self.catalogue = catalogue or CatalogueService(
            services["User"].engine,
            registry,
            max_filter_length=settings.max_filter_length,
            max_filter_depth=settings.max_filter_depth,
        )
        self._catalogues = {
            rt.endpoint.strip("/").lower(): rt
            for rt in registry.resource_types.values()
            if rt.name in CATALOGUE_TYPES
        }

    def base_url(self, request: Request) -> str:
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        # What `request.url` would give for scheme and netloc, without parsing the whole URL.
        scope = request.scope
        scheme = scope.get("scheme", "http")
        host = request.headers.get("host")
        if not host:
            server = scope.get("server")
            if server is None:
                host = "localhost"
            else:
                name, port = server
                default = {"http": 80, "https": 443}.get(scheme)
                host = name if port == default else f"{name}:{port}"
        return f"{scheme}://{host}{scope.get('root_path', '')}".rstrip("/")

    async def handle(self, request: Request, path: str) -> Response:
        principal = await self.auth.authenticate(request, "scim")
        assert principal.tenant_id is not None
        base = self.base_url(request)
        ctx = RequestContext(principal.tenant_id, principal.token_name, base, principal.tenant_settings)
        # The request log entry names the unknown attributes the services ignored (middleware.py).
        request.scope.setdefault("state", {})["unknown_attributes"] = ctx.unknown_attributes
        segments = [s for s in path.split("/") if s]
        method = request.method
        if not segments:
            raise ScimError(404, "no resource at the service root; see /ServiceProviderConfig")
        head = segments[0].lower()
        if head in self._by_segment:
            service = self.services[self._by_segment[head]]
            if len(segments) == 1:
                return await self._collection(request, ctx, service, method)
            if len(segments) == 2 and segments[1].lower() == SEARCH:
                if method != "POST":
                    raise method_not_allowed("POST")
                return await self._search(request, ctx, service)
            if len(segments) == 2:
                return await self._item(request, ctx, service, segments[1], method)
            raise ScimError(404, "no such endpoint")
        if head in self._catalogues:
            return await handle_catalogue(
                request,
                ctx,
                self.catalogue,
                self._catalogues[head],
                segments,
                default_count=self._default_count(ctx),
                max_count=self._max_count(ctx),
                max_body_bytes=self.settings.max_body_bytes,
                max_json_depth=self.settings.max_json_depth,
            )
        if head == SEARCH and len(segments) == 1:
            if method != "POST":
                raise method_not_allowed("POST")
            return await self._root_search(request, ctx)
        return await self._discovery_or_other(request, ctx, segments, method)

    # ---- resources --------------------------------------------------------------------------

    def _projection(self, request: Request, service: ResourceService) -> Projection:
        if not request.scope.get("query_string"):  # nearly every request: nothing to parse
            return service.default_projection
        params = {k.lower(): v for k, v in request.query_params.items()}
        return Projection(
            self.registry,
            service.rt,
            params.get("attributes") or None,
            params.get("excludedattributes") or None,
        )

    async def _collection(
        self, request: Request, ctx: RequestContext, service: ResourceService, method: str
    ) -> Response:
        if method == "GET":
            query = from_query_params(
                request.query_params, default_count=self._default_count(ctx), max_count=self._max_count(ctx)
            )
            return scim_json(await service.list(ctx, query))
        if method == "POST":
            body = await read_object(request, self.settings.max_body_bytes, self.settings.max_json_depth)
            stored, out = await service.create(ctx, body, self._projection(request, service))
            headers = {
                "Location": location(ctx.base_url, service.rt, stored.id),
                "ETag": etag(stored.version),
            }
            return scim_json(out, 201, headers)
        raise method_not_allowed("GET, POST")

    async def _item(
        self, request: Request, ctx: RequestContext, service: ResourceService, resource_id: str, method: str
    ) -> Response:
        if method == "GET":
            projection = self._projection(request, service)
            got: tuple[Any, dict[str, Any] | MemberStream]
            if isinstance(service, GroupService):
                got = await service.get_streaming(ctx, resource_id, projection)
            else:
                got = await service.get(ctx, resource_id, projection)
            stored, out = got
            tag = etag(stored.version)
            none_match = request.headers.get("if-none-match")
            if none_match is not None and etag_matches(none_match, stored.version):
                return empty(304, {"ETag": tag})
            headers = {"ETag": tag, "Location": location(ctx.base_url, service.rt, stored.id)}
            if isinstance(out, MemberStream):
                return StreamingResponse(out, media_type=SCIM_MEDIA_TYPE, headers=headers)
            return scim_json(out, 200, headers)
        if_match = request.headers.get("if-match")
        if method == "PUT":
            body = await read_object(request, self.settings.max_body_bytes, self.settings.max_json_depth)
            stored, out = await service.replace(
                ctx, resource_id, body, self._projection(request, service), if_match
            )
            return scim_json(out, 200, {"ETag": etag(stored.version)})
        if method == "PATCH":
            body = await read_json(request, self.settings.max_body_bytes, self.settings.max_json_depth)
            params = {k.lower() for k in request.query_params} if request.scope.get("query_string") else set()
            asked = bool(params & {"attributes", "excludedattributes"})
            wants_body = asked or not self._patch_no_content(ctx, service)
            patch_projection = self._projection(request, service) if wants_body else None
            stored, patched = await service.patch(ctx, resource_id, body, patch_projection, if_match)
            if patched is None:
                return empty(204, {"ETag": etag(stored.version)})
            return scim_json(patched, 200, {"ETag": etag(stored.version)})
        if method == "DELETE":
            await service.delete(ctx, resource_id, if_match)
            return empty(204)
        raise method_not_allowed("GET, PUT, PATCH, DELETE")

    def _patch_no_content(self, ctx: RequestContext, service: ResourceService) -> bool:
        """DESIGN.md section 4: Users answer 200 with the body, Groups 204; both per-tenant settings."""
        key = f"patch_204_{service.rt.endpoint.strip('/').lower()}"
        return bool(ctx.setting(key, service.rt.name == "Group"))

    def _default_count(self, ctx: RequestContext) -> int:
        return min(
            int(ctx.setting("default_page_size", self.settings.default_page_size)), self._max_count(ctx)
        )

    def _max_count(self, ctx: RequestContext) -> int:
        return int(ctx.setting("max_page_size", self.settings.max_page_size))

    async def _search(self, request: Request, ctx: RequestContext, service: ResourceService) -> Response:
        body = await read_json(request, self.settings.max_body_bytes, self.settings.max_json_depth)
        query = from_search_request(
            body, default_count=self._default_count(ctx), max_count=self._max_count(ctx)
        )
        return scim_json(await service.list(ctx, query))

    async def _root_search(self, request: Request, ctx: RequestContext) -> Response:
        """RFC 7644 3.4.3 at the root: the filter runs on every resource type; results concatenated."""
        body = await read_json(request, self.settings.max_body_bytes, self.settings.max_json_depth)
        query = from_search_request(
            body, default_count=self._default_count(ctx), max_count=self._max_count(ctx)
        )
        if query.cursor is not None:
            raise invalid_value("cursor pagination is not available on a root /.search; search per type")
        query = replace(query, across_types=True)
        services = list(self.services.values())
        totals = [
            int((await s.list(ctx, replace(query, start_index=1, count=0)))["totalResults"]) for s in services
        ]
        resources: list[dict[str, Any]] = []
        offset, remaining = query.start_index - 1, query.count
        for total, service in zip(totals, services, strict=True):
            if remaining <= 0:
                break
            if offset >= total:
                offset -= total
                continue
            page = await service.list(ctx, replace(query, start_index=offset + 1, count=remaining))
            resources.extend(page["Resources"])
            remaining -= len(page["Resources"])
            offset = 0
        return scim_json(list_response(resources, sum(totals), query.start_index))

    # ---- discovery --------------------------------------------------------------------------

    async def _discovery_or_other(
        self, request: Request, ctx: RequestContext, segments: list[str], method: str
    ) -> Response:
        head = segments[0].lower()
        base = ctx.base_url
        if head == "bulk":
            return await handle_bulk(request, ctx, segments, self.settings, self.services)
        if head in ("bulk", "me"):
            raise ScimError(501, f"/{segments[0]} is not implemented")
        if head not in ("serviceproviderconfig", "schemas", "resourcetypes"):
            raise ScimError(404, "no such endpoint")
        if method != "GET":
            raise method_not_allowed("GET")
        if head == "serviceproviderconfig" and len(segments) == 1:
            return scim_json(discovery.service_provider_config(self.settings, base))
        if head == "schemas":
            if len(segments) == 1:
                return scim_json(discovery.schemas(self.registry, base))
            schema = self.registry.schema("/".join(segments[1:]))
            if schema is None:
                raise ScimError(404, f"schema {segments[1]} not found")
            return scim_json(discovery.schema_doc(schema, base))
        if head == "resourcetypes":
            if len(segments) == 1:
                return scim_json(discovery.resource_types(self.registry, base))
            try:
                rt = self.registry.resource_type(segments[1])
            except KeyError:
                raise ScimError(404, f"resource type {segments[1]} not found") from None
            return scim_json(discovery.resource_type_doc(rt, base))
        raise ScimError(404, "no such endpoint")
