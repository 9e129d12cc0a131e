"""The outbox's consumers: change feed, webhooks and in-process Python hooks (docs/events.md)."""

from __future__ import annotations

from provisor.events.model import Event
from provisor.events.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, verify_signature

__all__ = ["EVENT_ID_HEADER", "SIGNATURE_HEADER", "Event", "sign", "verify_signature"]
