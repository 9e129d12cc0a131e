"""Bearer-token authentication: which token a secret is, its tenant's settings, the rate limit.

Every failure is the same 401 SCIM error, with no hint why. Successful lookups are answered from
`AuthCache` while its PostgreSQL listener guarantees that a revocation, an expiry change or a
tenant change empties it in the commit's wake (storage/auth_cache.py). Reading the secret from
the request is http/auth.py's part.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Any

from provisor.budget import outside_budget
from provisor.clock import now
from provisor.errors import ScimError
from provisor.service.ratelimit import RateLimiter
from provisor.storage import tenants as tenant_store
from provisor.storage import tokens as token_store
from provisor.storage.auth_cache import AuthCache, AuthListener
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import Tenants, Tokens
from provisor.storage.tenants import DEFAULT_TENANT
from provisor.storage.transactions import write_transaction
from provisor.telemetry.metrics import RequestMetrics

__all__ = ["AuthListener", "Principal", "TokenAuthenticator", "unauthorized"]

#: Storage as the contract names it (storage/interfaces/).
_tokens: Tokens = token_store
_tenants: Tenants = tenant_store

#: How often `last_used` is written per token: a write per request would double the cost of reads.
TOUCH_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Principal:
    tenant_id: str | None
    token_name: str
    kind: str  # "scim" | "admin"
    tenant_settings: dict[str, Any] = field(default_factory=dict)


def unauthorized(detail: str = "missing or invalid bearer token") -> ScimError:
    return ScimError(401, detail)


#: The static token's cache entry: its key cannot collide with a SHA-256 hex digest.
_STATIC_KEY = "static"
_STATIC_INFO = token_store.TokenInfo("static", DEFAULT_TENANT, "PROVISOR_TOKEN", "scim", "", None, None, None)

#: What a successful lookup yields: the token, and its tenant's settings (read-only by convention).
Found = tuple[token_store.TokenInfo, dict[str, Any]]


class TokenAuthenticator:
    """Who a bearer secret is, and whether their tenant is within its rate limit."""

    def __init__(
        self,
        engine: AsyncEngine,
        static_token: str | None,
        limiter: RateLimiter | None = None,
        cache: AuthCache[Found] | None = None,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.engine = engine
        #: Counts the cache's hits and misses (None: metrics are off).
        self.metrics = metrics
        self.limiter = limiter
        self.cache: AuthCache[Found] = cache if cache is not None else AuthCache()
        self._static_hash = _tokens.hash_secret(static_token) if static_token else None
        self._touched: dict[str, float] = {}

    async def identify(self, secret: str, kind: str) -> Principal:
        """The principal of a bearer secret for an API of `kind` ("scim" or "admin"); a 401
        `ScimError` for any secret that is unknown, revoked, expired or of the other kind."""
        digest = _tokens.hash_secret(secret)
        if kind == "scim" and self._static_hash and hmac.compare_digest(digest, self._static_hash):
            return Principal(DEFAULT_TENANT, "PROVISOR_TOKEN", "scim", await self._static_settings())
        at = now()
        found = await self._find(secret, digest, at)
        if found is None or found[0].kind != kind:
            raise unauthorized()
        info, settings = found
        await self._touch(info.id, at)
        return Principal(info.tenant_id, info.name, info.kind, settings)

    async def limit(self, principal: Principal) -> None:
        """Raise `RateLimited` (429) when the principal's tenant is over its rate limit."""
        if self.limiter is not None and principal.tenant_id is not None:
            await self.limiter.check(principal.tenant_id, principal.tenant_settings)

    async def _find(self, secret: str, digest: str, at: str) -> Found | None:
        found = self.cache.get(digest)
        if self.metrics is not None:
            self.metrics.token_cache(found is not None)
        if found is not None:
            expires_at = found[0].expires_at
            if expires_at is None or expires_at > at:
                return found
            self.cache.discard(digest)  # expired since it was cached
            return None
        generation = self.cache.generation
        found = await _tokens.find_active(self.engine, secret, at)
        if found is not None:
            self.cache.put(digest, found, generation)
        return found

    async def _static_settings(self) -> dict[str, Any]:
        found = self.cache.get(_STATIC_KEY)
        if found is None:
            generation = self.cache.generation
            found = (_STATIC_INFO, await _tenants.read_settings(self.engine, DEFAULT_TENANT))
            self.cache.put(_STATIC_KEY, found, generation)
        return found[1]

    async def _touch(self, token_id: str, at: str) -> None:
        moment = time.monotonic()
        if moment - self._touched.get(token_id, -TOUCH_INTERVAL_SECONDS) < TOUCH_INTERVAL_SECONDS:
            return
        self._touched[token_id] = moment
        with outside_budget():
            async with write_transaction(self.engine) as conn:
                await _tokens.touch(conn, token_id, at)
