"""The customer's IT-admin setup page behind a setup link (`/setup/<id>.<secret>`, docs/setup-link.md).

The link is the only credential: every route resolves it first (404 for an unknown or altered link,
410 for an expired or revoked one) and then reads or writes nothing but that link's tenant.

- `GET  /setup/<link>`         the page: SCIM base URL, token form, live checklist, IdP instructions
- `POST /setup/<link>/token`   mints the tenant's SCIM token (form with an anti-forgery field)
- `GET  /setup/<link>/status`  the checklist as JSON, polled by `static/setup/setup.js`
- `GET  /setup/static/...`     the page's script and stylesheet (no CDN, no build step)

Templates are Jinja2 with autoescaping on, so every value (tenant names, request paths, error
details) is HTML-escaped; the script fills the live parts with `textContent` only.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from provisor.service import setup_links
from provisor.service.setup_links import Resolved, SetupLink

if TYPE_CHECKING:
    from provisor.container import Provisor

log = logging.getLogger("provisor.setup")

_HERE = Path(__file__).parent
#: The page loads its own script and stylesheet and posts only to itself.
CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
MAX_FORM_BYTES = 4096
_templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _cookie_name(link_id: str) -> str:
    return f"provisor_setup_{link_id}"


def _html(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = _templates.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status, headers={"Content-Security-Policy": CSP})


def _refused(resolved: Resolved) -> HTMLResponse:
    if resolved.status == 410:
        return _html(
            "setup/refused.html",
            410,
            title="This setup link has expired or was revoked",
            message="Ask your Provisor administrator for a new setup link.",
        )
    return _html(
        "setup/refused.html",
        404,
        title="Setup link not found",
        message="Check that the whole link was copied, or ask your Provisor administrator for a new one.",
    )


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def setup_routes(provisor: Provisor) -> list[BaseRoute]:
    engine = provisor.engine
    settings = provisor.settings

    def scim_base(request: Request) -> str:
        if settings.base_url:
            return settings.base_url.rstrip("/")
        return str(request.base_url).rstrip("/") + "/scim/v2"

    def page(request: Request, link: SetupLink, secret: str, minted: str | None = None) -> HTMLResponse:
        nonce = request.cookies.get(_cookie_name(link.id)) or secrets.token_urlsafe(16)
        reference = f"{link.id}.{secret}"
        response = _html(
            "setup/page.html",
            title=f"Connect your identity provider to Provisor ({link.tenant_id})",
            tenant=link.tenant_id,
            expires=link.expires_at,
            scim_base=scim_base(request),
            link_path=f"/setup/{reference}",
            csrf=setup_links.csrf_token(secret, link.id, nonce),
            minted=minted,
            checks=setup_links.CHECKS,
        )
        response.set_cookie(
            _cookie_name(link.id),
            nonce,
            path="/setup/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def show(request: Request) -> Response:
        resolved = await setup_links.resolve(engine, request.path_params["link"], touch=True)
        if resolved.link is None:
            return _refused(resolved)
        return page(request, resolved.link, resolved.secret)

    async def mint(request: Request) -> Response:
        resolved = await setup_links.resolve(engine, request.path_params["link"], touch=True)
        if resolved.link is None:
            return _refused(resolved)
        link = resolved.link
        raw = await request.body()
        form = parse_qs(raw.decode("utf-8", "replace")) if len(raw) <= MAX_FORM_BYTES else {}
        sent = next(iter(form.get("csrf", [])), None)
        nonce = request.cookies.get(_cookie_name(link.id))
        if not setup_links.csrf_ok(resolved.secret, link.id, nonce, sent):
            return _html(
                "setup/refused.html",
                403,
                title="The form expired",
                message="Reload the setup page and press the button again.",
            )
        secret = await setup_links.mint_token(engine, link)
        log.info("setup link %s minted a token for tenant %s", link.id, link.tenant_id)
        return page(request, link, resolved.secret, minted=secret)

    async def status(request: Request) -> Response:
        resolved = await setup_links.resolve(engine, request.path_params["link"])
        if resolved.link is None:
            gone = resolved.status == 410
            return _json({"error": "expired or revoked" if gone else "not found"}, resolved.status)
        await provisor.request_log.flush()  # this worker's own queued rows become visible first
        return _json(await setup_links.connection_status(engine, resolved.link, settings.request_log_mode))

    return [
        Mount("/static", app=StaticFiles(directory=_HERE / "static" / "setup"), name="setup-static"),
        Route("/{link}", show, methods=["GET"]),
        Route("/{link}/token", mint, methods=["POST"]),
        Route("/{link}/status", status, methods=["GET"]),
    ]
