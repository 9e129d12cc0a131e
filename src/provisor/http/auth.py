"""Bearer-token authentication at the HTTP edge: the secret is read from the `Authorization`
header here; who it belongs to is service/auth.py's question.
"""

from __future__ import annotations

from starlette.requests import Request

from provisor.service.auth import Principal, TokenAuthenticator, unauthorized

__all__ = ["Authenticator", "Principal", "bearer_secret"]


def bearer_secret(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > 512:
        raise unauthorized()
    return secret


class Authenticator(TokenAuthenticator):
    async def authenticate(self, request: Request, kind: str) -> Principal:
        principal = await self.identify(bearer_secret(request), kind)
        request.state.principal = principal  # read by the request log, even when the limit refuses
        await self.limit(principal)
        return principal
