"""The console's setup-links page: list, create and revoke the links that give a customer's IT
admin their tenant's setup page (docs/setup-link.md). Everything goes through
provisor.service.setup_links, as the CLI and the admin API do; app.py checks the session and,
for the POSTs, the CSRF token first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from provisor.clock import now
from provisor.http.console.render import page
from provisor.http.console.session import form_of
from provisor.service import setup_links
from provisor.service.console import tenant_ids

if TYPE_CHECKING:
    from provisor.container import Provisor

BACK = "/console/setup-links"


def _done(request: Request, message: str, status: int = 200, url: str | None = None) -> Response:
    return page(
        request, "done.html", status, message=message, back=BACK, secret=url, secret_label="Setup link URL"
    )


def routes(provisor: Provisor) -> list[tuple[str, str, Any]]:
    """(method, path, handler) triples under /console."""
    engine = provisor.engine

    def base_url(request: Request) -> str:
        # The admin API's rule: PROVISOR_BASE_URL when set (a trailing /scim/v2 is dropped by
        # service.setup_links.link_url), else the root this request reached.
        return provisor.settings.base_url or str(request.base_url)

    async def listing(request: Request) -> Response:
        links = await setup_links.list_links(engine)
        tenants = await tenant_ids(engine)
        at = now()
        rows = [setup_links.describe(link, at) for link in reversed(links)]  # newest first
        return page(request, "setup_links.html", rows=rows, tenants=tenants)

    async def create(request: Request) -> Response:
        form = await form_of(request)
        raw_tenant, raw_expiry = form.get("tenant"), form.get("expires_in")
        tenant = raw_tenant.strip() if isinstance(raw_tenant, str) else ""
        expires_in = (raw_expiry.strip() if isinstance(raw_expiry, str) else "") or "7d"
        if not tenant:
            return _done(request, "Not created: name the tenant the link sets up.", 400)
        try:
            lifetime = setup_links.parse_lifetime(expires_in)
        except setup_links.BadLifetime as exc:
            return _done(request, f"Not created: {exc}", 400)
        try:
            made = await setup_links.create(engine, tenant, base_url(request), lifetime)
        except setup_links.UnknownTenant:  # tenants are made on purpose only, never by a link
            return _done(request, f"Not created: no tenant {tenant}.", 404)
        return _done(
            request,
            f"Created setup link {made.link.id} for tenant {tenant}; it expires {made.link.expires_at}. "
            "Send this URL to the tenant's IT admin:",
            url=made.url,
        )

    async def revoke(request: Request) -> Response:
        link_id = request.path_params["link_id"]
        if not await setup_links.revoke(engine, link_id):
            return _done(request, f"No live setup link {link_id}.", 404)
        return _done(request, f"Revoked setup link {link_id}: its page answers 410 from now on.")

    return [
        ("GET", "/setup-links", listing),
        ("POST", "/setup-links/create", create),
        ("POST", "/setup-links/{link_id}/revoke", revoke),
    ]
