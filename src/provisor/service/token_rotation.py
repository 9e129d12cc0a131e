"""Token rotation with overlap: the console's Rotate button and `provisor token rotate`.

A new token is minted for the same tenant and kind; the old one keeps working for `overlap` and
then expires, so an IdP can be switched to the new secret without a window of 401s. The old
token's `last_used` tells the operator when the IdP stopped using it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from provisor.clock import format_instant, now
from provisor.storage import tokens as token_store
from provisor.storage.auth_cache import auth_write
from provisor.storage.handles import AsyncEngine
from provisor.storage.interfaces import Tokens

DEFAULT_OVERLAP = timedelta(days=7)

#: Storage as the contract names it (storage/interfaces/).
_store: Tokens = token_store


class RotationError(ValueError):
    """The token cannot be rotated (unknown, revoked or expired)."""


@dataclass(frozen=True)
class Rotation:
    old: token_store.TokenInfo
    new: token_store.TokenInfo
    secret: str
    old_expires_at: str


async def rotate_token(engine: AsyncEngine, token_id: str, overlap: timedelta = DEFAULT_OVERLAP) -> Rotation:
    """Mint the successor of `token_id` and schedule the old one's expiry, in one transaction."""
    if overlap < timedelta(0):
        raise RotationError("the overlap cannot be negative")
    async with auth_write(engine) as conn:  # every worker sees the old token's new expiry on return
        old = await _store.get_token(conn, token_id)
        at = now()
        if old is None or old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= at):
            raise RotationError(f"no active token {token_id}")
        until = format_instant(datetime.now(UTC) + overlap)
        name = old.name if old.name.endswith("(rotated)") else f"{old.name} (rotated)"
        new, secret = await _store.create_token(
            conn, tenant_id=old.tenant_id, name=name, kind=old.kind, expires_at=None
        )
        await _store.set_expiry(conn, old.id, until)
        refreshed = await _store.get_token(conn, old.id)
    assert refreshed is not None
    return Rotation(old=refreshed, new=new, secret=secret, old_expires_at=refreshed.expires_at or until)
