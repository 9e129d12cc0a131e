"""What a service call needs to know about who is asking and where they are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RequestContext:
    tenant_id: str
    #: The name of the token that made the request (recorded as the event's actor).
    actor: str | None
    #: Base URL of the SCIM API for `meta.location`, without trailing slash.
    base_url: str
    tenant_settings: dict[str, Any] = field(default_factory=dict)
    #: Names of the unknown attributes the request's bodies carried, which were ignored: the HTTP
    #: layer puts them on the request log entry (an IdP's mapping typo must not vanish silently).
    unknown_attributes: list[str] = field(default_factory=list, compare=False)

    def setting(self, name: str, default: Any) -> Any:
        return self.tenant_settings.get(name, default)
