"""Setup links: a signed, expiring URL that gives a customer's IT admin their tenant's SCIM
settings, a token, IdP instructions and a live connection check, with no other credential
(docs/setup-link.md).

The URL is `<base>/setup/<id>.<secret>`. Only the SHA-256 of the secret is stored and compared in
constant time, so a database reader cannot rebuild a working URL. The operator's CLI, the admin API
and the console all call the functions here.

Minting: each mint on a link's page revokes the token that link minted before (they share the name
`setup-link <id>`), so at most one setup-minted token per link is live and a secret shown on a
screen someone walked away from stops working once a new one is minted. Revoking or letting the
link expire does not revoke the token: the IdP keeps provisioning with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import orjson

from provisor.clock import format_instant, now
from provisor.durations import parse_duration
from provisor.storage import setup_links as store
from provisor.storage import tenants as tenant_store
from provisor.storage import tokens as token_store
from provisor.storage.auth_cache import auth_write
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import SetupLinks, Tenants, Tokens
from provisor.storage.setup_links import SetupLink as SetupLink
from provisor.storage.transactions import read_transaction, write_transaction

#: Storage as the contract names it (storage/interfaces/).
_store: SetupLinks = store
_tenants: Tenants = tenant_store
_tokens: Tokens = token_store

DEFAULT_LIFETIME = timedelta(days=7)
MAX_LIFETIME = timedelta(days=90)
SETUP_PATH = "/setup/"
#: How many of the link's latest requests the checklist reads.
RECENT_REQUESTS = 2000
#: How many failing requests the page lists.
SHOWN_ERRORS = 20

_LINK = re.compile(r"^([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")


class UnknownTenant(LookupError):
    """The tenant named does not exist (the CLI exits 2, the admin API answers 400)."""


class BadLifetime(ValueError):
    """The lifetime is not `<number><s|m|h|d>` or is outside (0, 90 days]."""


def parse_lifetime(text: str) -> timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise BadLifetime(str(exc)) from None
    if not timedelta(0) < value <= MAX_LIFETIME:
        raise BadLifetime(f"{text!r}: a setup link lives more than 0 s and at most 90 days")
    return value


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def site_root(base_url: str) -> str:
    """The server's public root from a base URL that may be the SCIM API's (`.../scim/v2`)."""
    base = base_url.strip().rstrip("/")
    return base[: -len("/scim/v2")] if base.endswith("/scim/v2") else base


def link_url(base_url: str, link_id: str, secret: str) -> str:
    return f"{site_root(base_url)}{SETUP_PATH}{link_id}.{secret}"


def token_name(link_id: str) -> str:
    """The name of the tokens a link mints (how its requests are found in the log)."""
    return f"setup-link {link_id}"


@dataclass(frozen=True)
class CreatedLink:
    link: SetupLink
    url: str


async def create(
    engine: AsyncEngine, tenant_id: str, base_url: str, lifetime: timedelta = DEFAULT_LIFETIME
) -> CreatedLink:
    """Store a new link for an existing tenant; the URL (with the secret) is returned only here."""
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise BadLifetime("a setup link lives more than 0 s and at most 90 days")
    link_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    created = datetime.now(UTC)
    link = SetupLink(
        id=link_id,
        tenant_id=tenant_id,
        secret_hash=hash_secret(secret),
        created=format_instant(created),
        expires_at=format_instant(created + lifetime),
        revoked_at=None,
        last_used=None,
    )
    async with write_transaction(engine) as conn:
        if not await _tenants.tenant_exists(conn, tenant_id):
            raise UnknownTenant(f"no tenant {tenant_id}")
        link = await _store.insert_link(conn, link)
    return CreatedLink(link, link_url(base_url, link_id, secret))


async def list_links(engine: AsyncEngine, tenant_id: str | None = None) -> list[SetupLink]:
    async with read_transaction(engine) as conn:
        return await _store.list_links(conn, tenant_id)


async def revoke(engine: AsyncEngine, link_id: str) -> bool:
    """Revoke a link (its page answers 410 at once); False when no live link has that id."""
    async with write_transaction(engine) as conn:
        return await _store.revoke_link(conn, link_id)


def describe(link: SetupLink, at: str | None = None) -> dict[str, Any]:
    """A link as the admin API and `setup-link list` show it (never its secret or hash)."""
    return {
        "id": link.id,
        "tenant": link.tenant_id,
        "created": link.created,
        "expires": link.expires_at,
        "revoked_at": link.revoked_at,
        "last_used": link.last_used,
        "state": link.state(at or now()),
    }


@dataclass(frozen=True)
class Resolved:
    """The outcome of opening a link: `link` is set only for a live link."""

    status: int  # 200, 404 (unknown or tampered) or 410 (expired or revoked)
    link: SetupLink | None = None
    secret: str = ""


async def resolve(engine: AsyncEngine, reference: str, *, touch: bool = False) -> Resolved:
    """Check `<id>.<secret>` from a URL. A changed character gives 404; a link past its expiry or
    revoked gives 410. With `touch`, records the use in `last_used`."""
    match = _LINK.match(reference)
    if match is None:
        return Resolved(404)
    link_id, secret = match.groups()
    async with read_transaction(engine) as conn:
        link = await _store.get_link(conn, link_id)
    if link is None or not hmac.compare_digest(link.secret_hash, hash_secret(secret)):
        return Resolved(404)
    at = now()
    if link.state(at) != "active":
        return Resolved(410)
    if touch:
        async with write_transaction(engine) as conn:
            await _store.touch_link(conn, link.id, at)
    return Resolved(200, link, secret)


def csrf_token(secret: str, link_id: str, nonce: str) -> str:
    """The form's anti-forgery value: bound to the link (its secret is the key) and to the nonce
    held in the page's SameSite=Strict cookie."""
    message = f"setup-csrf {link_id} {nonce}".encode()
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def csrf_ok(secret: str, link_id: str, nonce: str | None, sent: str | None) -> bool:
    if not nonce or not sent:
        return False
    return hmac.compare_digest(csrf_token(secret, link_id, nonce), sent)


async def mint_token(engine: AsyncEngine, link: SetupLink) -> str:
    """A new SCIM token for the link's tenant; the link's earlier mint is revoked in the same
    transaction (see the module docstring). Returns the secret, which is never stored."""
    name = token_name(link.id)
    async with auth_write(engine) as conn:  # the revoked mint is refused by every worker on return
        await _store.revoke_tokens_named(conn, link.tenant_id, name)
        _, secret = await _tokens.create_token(conn, tenant_id=link.tenant_id, name=name)
    return secret


# ---- the live checklist ---------------------------------------------------------------------

CHECKS: tuple[tuple[str, str], ...] = (
    ("authenticated", "An authenticated request arrived"),
    ("existence_check", "Existence check: GET /Users?filter=userName eq ..."),
    ("user_created", "User created: POST /Users answered 201"),
    ("user_updated", "User updated: PUT or PATCH /Users/{id} answered 2xx"),
    ("user_deactivated", "User deactivated: active set to false"),
    ("group_pushed", "Group pushed: POST /Groups answered 201 or its members changed"),
)

_USERS = re.compile(r"/Users/?$")
_USER = re.compile(r"/Users/[^/]+$")
_GROUPS = re.compile(r"/Groups/?$")
_GROUP = re.compile(r"/Groups/[^/]+$")
_USERNAME_EQ = re.compile(r"^\s*\(?\s*userName\s+eq\s", re.IGNORECASE)


def _is_existence_check(row: dict[str, Any]) -> bool:
    if row["method"] != "GET" or not _USERS.search(row["path"]) or row["status"] != 200:
        return False
    filters = parse_qs(row["query"] or "").get("filter", [])
    return any(_USERNAME_EQ.match(f) for f in filters)


def matches(key: str, row: dict[str, Any]) -> bool:
    """Whether a request-log row of the link's token satisfies check `key`."""
    method, path, status = row["method"], row["path"], row["status"]
    ok = 200 <= status < 300
    if key == "authenticated":
        return True  # only authenticated requests carry the token's name
    if key == "existence_check":
        return _is_existence_check(row)
    if key == "user_created":
        return method == "POST" and bool(_USERS.search(path)) and status == 201
    if key == "user_updated":
        return method in ("PUT", "PATCH") and bool(_USER.search(path)) and ok
    if key == "group_pushed":
        return (method == "POST" and bool(_GROUPS.search(path)) and status == 201) or (
            method in ("PUT", "PATCH") and bool(_GROUP.search(path)) and ok
        )
    return False


#: Which event names the resource a check saw (the metadata log has no bodies).
_SUBJECT_EVENTS = (
    ("user_created", "User", "created"),
    ("user_deactivated", "User", "deactivated"),
    ("group_pushed", "Group", "created"),
)


def _subject(payload: dict[str, Any]) -> str | None:
    """How the page names a resource: its displayName and userName as the IdP sent them."""
    names = [payload.get("displayName"), payload.get("userName")]
    shown = [n for n in names if isinstance(n, str) and n]
    return " / ".join(dict.fromkeys(shown))[:300] or None


def error_of(row: dict[str, Any]) -> dict[str, Any]:
    """A failing request as the page names it; `scimType` and `detail` come from the error
    document the request log keeps (None when it holds none)."""
    scim_type = detail = None
    if row.get("response_body"):
        try:
            body = orjson.loads(row["response_body"])
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            scim_type, detail = body.get("scimType"), body.get("detail")
    return {
        "at": row["at"],
        "method": row["method"],
        "path": row["path"] + (f"?{unquote_plus(row['query'])}" if row["query"] else ""),
        "status": row["status"],
        "scimType": scim_type if isinstance(scim_type, str) else None,
        "detail": detail if isinstance(detail, str) else None,
    }


async def connection_status(
    engine: AsyncEngine, link: SetupLink, default_log_mode: str = "metadata"
) -> dict[str, Any]:
    """What the setup page's checklist shows: which steps of a provisioning run were seen from
    tokens this link minted, and the latest failing requests. Reads only the link's tenant.
    Deactivation is read from the events (the metadata log has no bodies to tell it apart)."""
    name = token_name(link.id)
    async with read_transaction(engine) as conn:
        settings = await _tenants.get_settings(conn, link.tenant_id)
        rows = await _store.requests_by_token(conn, link.tenant_id, name, link.since_request, RECENT_REQUESTS)
        subjects = {
            key: await _store.first_event(conn, link.tenant_id, link.since_event, name, resource_type, op)
            for key, resource_type, op in _SUBJECT_EVENTS
        }
    seen: dict[str, str] = {}
    for row in rows:
        for key, _ in CHECKS:
            if key not in seen and matches(key, row):
                seen[key] = row["at"]
    deactivated = subjects["user_deactivated"]
    if deactivated is not None:
        seen["user_deactivated"] = deactivated[0]
    errors = [error_of(r) for r in rows if r["status"] >= 400][-SHOWN_ERRORS:]
    checks = []
    for key, label in CHECKS:
        found = subjects.get(key)
        subject = _subject(found[1]) if found is not None and key in seen else None
        checks.append(
            {"key": key, "label": label, "done": key in seen, "at": seen.get(key), "subject": subject}
        )
    return {
        "checks": checks,
        "errors": list(reversed(errors)),
        "requests": len(rows),
        "request_log": settings.get("request_log", default_log_mode),
        "expires": link.expires_at,
    }
