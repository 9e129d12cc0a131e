"""Sign-in, sessions and CSRF for the console (docs/console.md, "Security").

The cookie carries a random session id and nothing else; the database keeps its hash
(storage/console_sessions.py). The CSRF token of a session is an HMAC of its id, so it needs no
storage and is useless without the cookie. Forms carry it in a hidden `csrf` field.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from provisor.clock import now
from provisor.config import Settings
from provisor.service import console_sessions
from provisor.service.database import Database

COOKIE = "provisor_console"
COOKIE_PATH = "/console"
#: A session's idle expiry is pushed forward at most this often (one write a minute, not a request).
EXTEND_EVERY_SECONDS = 60.0
#: When a session was last extended is remembered for at most this many sessions per process.
MAX_TRACKED_SESSIONS = 10_000


@dataclass(frozen=True)
class Signed:
    session_id: str
    csrf: str


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"provisor-console-csrf", hashlib.sha256).hexdigest()


class Sessions:
    def __init__(self, engine: Database, settings: Settings) -> None:
        self.engine = engine
        self.idle = timedelta(minutes=settings.console_idle_minutes)
        self.absolute = timedelta(hours=settings.console_session_hours)
        self.base_https = (settings.base_url or "").lower().startswith("https://")
        self._extended: dict[str, float] = {}

    def secure(self, request: Request) -> bool:
        """HTTPS to the browser: the request itself, or a proxy whose public base URL is https."""
        return request.url.scheme == "https" or self.base_https

    async def current(self, request: Request) -> Signed | None:
        session_id = request.cookies.get(COOKIE)
        if not session_id or len(session_id) > 128:
            return None
        found = await console_sessions.find(self.engine, session_id, now())
        if found is None:
            return None
        moment = time.monotonic()
        if moment - self._extended.get(found.id_hash, -EXTEND_EVERY_SECONDS) >= EXTEND_EVERY_SECONDS:
            if len(self._extended) > MAX_TRACKED_SESSIONS:  # ended sessions' entries: forget them all
                self._extended.clear()
            self._extended[found.id_hash] = moment
            await console_sessions.extend(self.engine, found.id_hash, idle=self.idle)
        return Signed(session_id, csrf_token(session_id))

    async def sign_in(self, secret: str) -> str | None:
        """A new session id when `secret` is a live admin token of this deployment, else None."""
        if not secret or len(secret) > 512:
            return None
        return await console_sessions.open_with_token(
            self.engine, secret, now(), idle=self.idle, absolute=self.absolute
        )

    async def sign_out(self, session_id: str) -> None:
        await console_sessions.close(self.engine, session_id)

    def set_cookie(self, request: Request, response: Response, session_id: str) -> None:
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int(self.absolute.total_seconds()),
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=self.secure(request),
        )

    def clear_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=self.secure(request)
        )


def csrf_ok(signed: Signed, submitted: object) -> bool:
    return isinstance(submitted, str) and hmac.compare_digest(submitted.encode(), signed.csrf.encode())


def same_origin(request: Request) -> bool:
    """A sign-in must come from this site's own page, so one posted from another site cannot
    plant a session (login CSRF). Browsers say so in `Sec-Fetch-Site`; older ones send an
    `Origin`, which must then name this host (it is `null` under the console's no-referrer
    policy, which says nothing and is let through only without `Sec-Fetch-Site`)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


#: Console forms are small; a bigger body is refused unread.
MAX_FORM_BYTES = 65_536


async def form_of(request: Request) -> dict[str, str]:
    """The request's `application/x-www-form-urlencoded` fields (the last of repeated names),
    parsed once per request. Only this encoding is used by the console's forms, so no multipart
    parser (and no extra dependency) is needed; another body type yields no fields."""
    cached = getattr(request.state, "console_form", None)
    if cached is not None:
        return dict(cached)
    fields: dict[str, str] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length")
    if content_type == "application/x-www-form-urlencoded" and (
        length is None or (length.isdigit() and int(length) <= MAX_FORM_BYTES)
    ):
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                body = b""
                break
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            fields[key] = value
    request.state.console_form = fields
    return dict(fields)
