"""What a step of a write (a tombstone's restore, an import's adoption) uses of the resource
service that hands the write to it: the service's type, its hooks, and how it records and answers.

The steps are separate modules that take the calling service as an argument; naming this much as
a Protocol keeps them from importing service/resources.py, which imports them.
"""

from __future__ import annotations

from typing import Any, Protocol

from provisor.events.model import EventOp
from provisor.schema.model import ResourceType
from provisor.schema.registry import Registry
from provisor.service.context import RequestContext
from provisor.service.projection import Projection
from provisor.storage.handles import AsyncConnection, AsyncEngine
from provisor.storage.resources import StoredResource


class ResourceOwner(Protocol):
    """The service of one resource type (service/resources.py's ResourceService), as its write
    steps see it."""

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def rt(self) -> ResourceType: ...

    def split_body(self, doc: dict[str, Any]) -> tuple[dict[str, Any], Any]: ...

    def index_for(self, ctx: RequestContext, doc: dict[str, Any]) -> list[tuple[str, str, bool]]: ...

    def event_payload(
        self, ctx: RequestContext, stored: StoredResource, before: dict[str, Any] | None
    ) -> dict[str, Any]: ...

    async def store_extra(
        self, conn: AsyncConnection, ctx: RequestContext, stored: StoredResource, extra: Any, *, replace: bool
    ) -> bool: ...

    async def record_event(
        self,
        conn: AsyncConnection,
        ctx: RequestContext,
        stored: StoredResource,
        op: EventOp,
        at: str,
        payload: dict[str, Any] | None = None,
    ) -> None: ...

    async def render_one(
        self, conn: AsyncConnection, ctx: RequestContext, stored: StoredResource, projection: Projection
    ) -> dict[str, Any]: ...
