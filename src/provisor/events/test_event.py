"""A test delivery for one webhook (the console's "Send test event"): a synthetic `test` event,
rendered and signed like a real one, POSTed once. Nothing is stored and nothing is retried."""

from __future__ import annotations

import httpx

from provisor.clock import now
from provisor.events.model import Event
from provisor.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from provisor.events.webhooks import SET_CONTENT_TYPE, render_body
from provisor.storage.webhooks import Webhook

TIMEOUT_SECONDS = 10.0


async def send_test_event(hook: Webhook) -> str:
    """POST a test event to `hook`; return what happened, in words."""
    event = Event(0, hook.tenant_id or "default", now(), "Test", "test", "test", None, "console", {})
    body = render_body(event, hook.format, hook.url, secret=hook.secret, webhook_id=hook.id)
    headers = {
        "Content-Type": SET_CONTENT_TYPE if hook.format == "set" else "application/json",
        "User-Agent": "provisor-webhooks",
        EVENT_ID_HEADER: event.id,
    }
    if hook.secret:
        headers[SIGNATURE_HEADER] = sign(hook.secret, body)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            response = await client.post(hook.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"failed ({type(exc).__name__}: {exc})"
    return f"HTTP {response.status_code}"
