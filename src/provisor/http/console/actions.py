"""The console's state-changing handlers (POST only; app.py checks the session and CSRF first).

Each validates its form the way the matching CLI command does and answers with a page saying what
happened; a refused form changes nothing.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from provisor.clock import format_instant
from provisor.durations import parse_duration
from provisor.errors import ScimError
from provisor.events.test_event import send_test_event
from provisor.http.console.render import page
from provisor.http.console.session import form_of
from provisor.service import tenants, tokens, webhooks
from provisor.service.token_rotation import RotationError, rotate_token
from provisor.tenant_settings import parse_assignments

if TYPE_CHECKING:
    from provisor.container import Provisor


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _duration(text: str) -> timedelta:
    return parse_duration(text)  # a ValueError names the text and the form


def _done(
    request: Request, message: str, back: str, status: int = 200, secret: str | None = None
) -> Response:
    return page(request, "done.html", status, message=message, back=back, secret=secret)


def routes(provisor: Provisor) -> list[tuple[str, Any]]:
    engine = provisor.engine

    async def token_create(request: Request) -> Response:
        form = await form_of(request)
        admin = _field(form, "kind") == "admin"
        tenant, name = _field(form, "tenant") or "default", _field(form, "name") or "token"
        try:
            expires = _field(form, "expires_in")
            expires_at = format_instant(_now_dt() + _duration(expires)) if expires else None
        except ValueError as exc:
            return _done(request, f"Not created: {exc}", "/console/tokens", 400)
        try:
            info, secret = await tokens.create(
                engine,
                tenant_id=None if admin else tenant,
                name=name[:200],
                kind="admin" if admin else "scim",
                expires_at=expires_at,
            )
        except tokens.UnknownTenant:  # tenants are made on purpose only
            return _done(request, f"Not created: no tenant {tenant}.", "/console/tokens", 404)
        return _done(
            request, f"Created {info.kind} token {info.name} ({info.id}).", "/console/tokens", secret=secret
        )

    async def token_revoke(request: Request) -> Response:
        token_id = request.path_params["token_id"]
        revoked = await tokens.revoke(engine, token_id)  # refused by every worker once this returns
        if not revoked:
            return _done(request, f"No active token {token_id}.", "/console/tokens", 404)
        return _done(request, f"Revoked token {token_id}.", "/console/tokens")

    async def token_rotate(request: Request) -> Response:
        form = await form_of(request)
        try:
            overlap = _duration(_field(form, "overlap") or "7d")
            rotation = await rotate_token(engine, request.path_params["token_id"], overlap)
        except (ValueError, RotationError) as exc:
            return _done(request, f"Not rotated: {exc}", "/console/tokens", 400)
        return _done(
            request,
            f"New token {rotation.new.id} for tenant {rotation.new.tenant_id or '-'}. The old token "
            f"{rotation.old.id} works until {rotation.old_expires_at}; it was last used "
            f"{rotation.old.last_used or 'never'}.",
            "/console/tokens",
            secret=rotation.secret,
        )

    async def webhook_add(request: Request) -> Response:
        form = await form_of(request)
        ops = [o.strip() for o in _field(form, "events").split(",") if o.strip()] or None
        secret = _field(form, "secret") or secrets.token_urlsafe(24)
        try:
            hook = await webhooks.add(
                engine,
                url=_field(form, "url"),
                secret=secret,
                tenant_id=_field(form, "tenant") or None,
                ops=ops,
                format=_field(form, "format") or "json",
            )
        except ValueError as exc:
            return _done(request, f"Not added: {exc}", "/console/webhooks", 400)
        return _done(
            request,
            f"Added webhook {hook.id} for {hook.url}. Its signing secret:",
            "/console/webhooks",
            secret=secret,
        )

    async def webhook_remove(request: Request) -> Response:
        removed = await webhooks.remove(engine, request.path_params["webhook_id"])
        return _done(request, "Removed the webhook." if removed else "No such webhook.", "/console/webhooks")

    async def webhook_test(request: Request) -> Response:
        webhook_id = request.path_params["webhook_id"]
        hook = await webhooks.find(engine, webhook_id)
        if hook is None:
            return _done(request, "No such webhook.", "/console/webhooks", 404)
        outcome = await send_test_event(hook)
        return _done(request, f"Test event to {hook.url}: {outcome}", "/console/webhooks")

    async def redrive(request: Request) -> Response:
        form = await form_of(request)
        webhook_id, seq = _field(form, "webhook_id"), _field(form, "seq")
        count = await webhooks.redrive(engine, webhook_id, int(seq) if seq.isdigit() else None)
        provisor.events.wake()
        return _done(
            request, f"Redrove {count} dead deliver{'y' if count == 1 else 'ies'}.", "/console/webhooks"
        )

    async def tenant_settings(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        form = await form_of(request)
        pairs = [f"{k[4:]}={v}" for k, v in form.items() if k.startswith("set_") and isinstance(v, str)]
        pairs = [p for p in pairs if not p.endswith("=")]
        try:
            changes = parse_assignments(pairs)
        except ValueError as exc:
            return _done(request, f"Not saved: {exc}", "/console/tenants", 400)
        try:
            await tenants.update_settings(engine, tenant, changes)  # every worker's cache follows
        except ScimError:
            return _done(request, f"No tenant {tenant}.", "/console/tenants", 404)
        return RedirectResponse("/console/tenants", status_code=303)

    return [
        ("/tokens/create", token_create),
        ("/tokens/{token_id}/revoke", token_revoke),
        ("/tokens/{token_id}/rotate", token_rotate),
        ("/webhooks/add", webhook_add),
        ("/webhooks/{webhook_id}/remove", webhook_remove),
        ("/webhooks/{webhook_id}/test", webhook_test),
        ("/webhooks/redrive", redrive),
        ("/tenants/{tenant}/settings", tenant_settings),
    ]


def _now_dt() -> datetime:
    return datetime.now(UTC)
