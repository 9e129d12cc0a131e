"""Routing, the session guard and the read-only pages of the console.

Every page but the sign-in form needs a session; every POST also needs the session's CSRF token
(403 without it). State-changing handlers live in actions.py; the setup-links page in setup_links.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provisor.clock import now
from provisor.errors import ScimError
from provisor.http.console import actions, setup_links
from provisor.http.console.render import CSP, HERE, page
from provisor.http.console.session import Sessions, csrf_ok, form_of, same_origin
from provisor.protocol.query import ListQuery
from provisor.service import console
from provisor.service.console import Overview, RequestSearch, request_with_events
from provisor.service.context import RequestContext
from provisor.service.projection import Projection
from provisor.service.tenants import settings_of
from provisor.tenant_settings import VALIDATORS

if TYPE_CHECKING:
    from provisor.container import Provisor

Handler = Callable[[Request], Awaitable[Response]]
PAGE = 50
LIST_ATTRIBUTES = {"User": "userName,displayName,active,emails", "Group": "displayName,externalId"}


def _csp(app: ASGIApp) -> ASGIApp:
    """Every console response carries the console's own policy, which the envelope then keeps
    instead of its `default-src 'none'` (http/middleware.py)."""
    header = (b"content-security-policy", CSP)

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await app(scope, receive, send_with_csp)

    return wrapped


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _context(tenant: str, settings: dict[str, Any]) -> RequestContext:
    return RequestContext(tenant, None, "/scim/v2", settings)


def console_app(provisor: Provisor) -> ASGIApp:
    sessions = Sessions(provisor.engine, provisor.settings)
    figures = Overview(provisor.engine)

    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            signed = await sessions.current(request)
            if request.method == "POST":
                form = await form_of(request)
                if signed is None or not csrf_ok(signed, form.get("csrf")):
                    return PlainTextResponse("missing or invalid CSRF token", status_code=403)
            elif signed is None:
                return RedirectResponse("/console/login", status_code=303)
            request.state.console = signed
            try:
                return await handler(request)
            except ScimError as error:
                return page(request, "error.html", error.status, message=error.detail)

        return run

    async def login_form(request: Request) -> Response:
        if await sessions.current(request) is not None:
            return RedirectResponse("/console/", status_code=303)
        return page(request, "login.html")

    async def login(request: Request) -> Response:
        if not same_origin(request):
            return PlainTextResponse("cross-site sign-in refused", status_code=403)
        form = await form_of(request)
        secret = form.get("token")
        session_id = await sessions.sign_in(secret.strip() if isinstance(secret, str) else "")
        if session_id is None:
            return page(request, "login.html", 401, error="That is not an admin token of this deployment.")
        response = RedirectResponse("/console/", status_code=303)
        sessions.set_cookie(request, response, session_id)
        return response

    async def logout(request: Request) -> Response:
        await sessions.sign_out(request.state.console.session_id)
        response = RedirectResponse("/console/login", status_code=303)
        sessions.clear_cookie(request, response)
        return response

    async def home(request: Request) -> Response:
        return page(request, "overview.html", tenants=await figures.summaries())

    async def requests_page(request: Request) -> Response:
        p = request.query_params
        status_class = _int(p.get("status"))
        where = RequestSearch(
            tenant=p.get("tenant") or None,
            status_class=status_class if status_class in (2, 3, 4, 5) else None,
            method=p.get("method") or None,
            path=p.get("path") or None,
            since=p.get("since") or None,
            until=p.get("until") or None,
            before=_int(p.get("before")),
        )
        rows, tenants = await console.search_requests(provisor.engine, where, PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        older = {k: v for k, v in p.items() if k != "before"}
        if more:
            older["before"] = str(rows[-1]["id"])
        return page(request, "requests.html", rows=rows, where=where, tenants=tenants, more=more, older=older)

    async def request_detail(request: Request) -> Response:
        row_id = _int(request.path_params["row_id"])
        found = await request_with_events(provisor.engine, row_id) if row_id is not None else None
        if found is None:
            return page(request, "error.html", 404, message="No such request in the log.")
        return page(request, "request.html", row=found.row, events=found.events, deliveries=found.deliveries)

    async def resources_page(request: Request) -> Response:
        kind = "User" if request.url.path.rstrip("/").endswith("users") else "Group"
        p = request.query_params
        tenants = await console.tenant_ids(provisor.engine)
        tenant = p.get("tenant") or (tenants[0] if tenants else "")
        text, scim_filter = (p.get("q") or "").strip(), (p.get("filter") or "").strip()
        body: dict[str, Any] = {"Resources": [], "totalResults": 0}
        error = None
        paged_by = scim_filter  # the filter the cursors are signed for: the pager carries it
        if tenant in tenants:
            ctx = _context(tenant, await settings_of(provisor.engine, tenant))
            # The search box tries one indexed attribute after the other: an OR of them is several
            # times slower on PostgreSQL than each alone (bench/console.py).
            filters = [scim_filter] if scim_filter else _text_filters(kind, text)
            cursor = p.get("cursor") or ""
            try:
                for chosen in filters:
                    query = ListQuery(chosen, count=PAGE, cursor=cursor, attributes=LIST_ATTRIBUTES[kind])
                    body = await provisor.services[kind].list(ctx, query)
                    paged_by = chosen or ""
                    if body["Resources"]:
                        break
            except ScimError as exc:
                error = exc.detail
        return page(
            request,
            "resources.html",
            kind=kind,
            tenant=tenant,
            tenants=tenants,
            text=text,
            scim_filter=scim_filter,
            paged_by=paged_by,
            body=body,
            error=error,
        )

    async def resource_detail(request: Request) -> Response:
        kind = "User" if request.path_params["kind"] == "users" else "Group"
        tenant, resource_id = request.path_params["tenant"], request.path_params["resource_id"]
        service = provisor.services[kind]
        settings = await settings_of(provisor.engine, tenant)
        excluded = "members" if kind == "Group" else None
        projection = Projection(provisor.registry, service.rt, None, excluded)
        _, doc = await service.get(_context(tenant, settings), resource_id, projection)
        after = request.query_params.get("after")
        history, members = await console.resource_history(
            provisor.engine,
            tenant,
            resource_id,
            limit=100,
            members_after=after,
            members=PAGE + 1 if kind == "Group" else 0,
        )
        return page(
            request,
            "resource.html",
            kind=kind,
            tenant=tenant,
            doc=doc,
            history=history,
            members=members[:PAGE],
            more_members=members[PAGE - 1][1] if len(members) > PAGE else None,
        )

    async def events_page(request: Request) -> Response:
        p = request.query_params
        rows = await console.event_feed(
            provisor.engine,
            tenant=p.get("tenant") or None,
            before=_int(p.get("before")),
            after=None,
            limit=PAGE,
        )
        tenants = await console.tenant_ids(provisor.engine)
        return page(request, "events.html", rows=rows, tenant=p.get("tenant") or "", tenants=tenants)

    async def event_rows(request: Request) -> Response:
        """The rows newer than `after`, as HTML, for the feed's live refresh (static/live.js)."""
        p = request.query_params
        rows = await console.event_feed(
            provisor.engine,
            tenant=p.get("tenant") or None,
            before=None,
            after=_int(p.get("after")) or 0,
            limit=PAGE,
        )
        return page(request, "event_rows.html", rows=rows)

    async def webhooks_page(request: Request) -> Response:
        view = await console.webhooks_view(provisor.engine, 100)
        return page(
            request,
            "webhooks.html",
            hooks=view.hooks,
            states=view.states,
            dead=view.dead,
            tenants=view.tenants,
        )

    async def tokens_page(request: Request) -> Response:
        rows, tenants = await console.token_rows(provisor.engine)
        return page(request, "tokens.html", rows=rows, tenants=tenants, at=now())

    async def tenants_page(request: Request) -> Response:
        settings = await console.all_tenant_settings(provisor.engine)
        tenants = list(settings)
        return page(
            request,
            "tenants.html",
            tenants=tenants,
            settings=settings,
            keys=sorted(VALIDATORS),
            dumps=lambda v: orjson.dumps(v).decode(),
        )

    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", guarded(logout), methods=["POST"]),
        Route("/", guarded(home), methods=["GET"]),
        Route("/requests", guarded(requests_page), methods=["GET"]),
        Route("/requests/{row_id}", guarded(request_detail), methods=["GET"]),
        Route("/users", guarded(resources_page), methods=["GET"]),
        Route("/groups", guarded(resources_page), methods=["GET"]),
        Route("/{kind:str}/{tenant:str}/{resource_id:str}", guarded(resource_detail), methods=["GET"]),
        Route("/events", guarded(events_page), methods=["GET"]),
        Route("/events/rows", guarded(event_rows), methods=["GET"]),
        Route("/webhooks", guarded(webhooks_page), methods=["GET"]),
        Route("/tokens", guarded(tokens_page), methods=["GET"]),
        Route("/tenants", guarded(tenants_page), methods=["GET"]),
        *[Route(path, guarded(handler), methods=["POST"]) for path, handler in actions.routes(provisor)],
        *[Route(path, guarded(handler), methods=[m]) for m, path, handler in setup_links.routes(provisor)],
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return _csp(Starlette(routes=routes))


def _text_filters(kind: str, text: str) -> list[str | None]:
    """The search box: a prefix of userName, else of displayName (users); of displayName (groups)."""
    if not text:
        return [None]
    literal = orjson.dumps(text).decode()
    if kind == "Group":
        return [f"displayName sw {literal}"]
    return [f"userName sw {literal}", f"displayName sw {literal}"]
