"""In-process Python hooks, fed by tailing the outbox rather than by the request path.

Why a tail and not a call inside the service: hooks then run only for committed changes, in
commit-safe seq order, and a slow or failing hook never delays or fails an IdP request. The
runner starts at the head of the log, so each process calls hooks for changes committed while it
runs (by any process); a hook that raises is logged and not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from provisor.events.model import Event
from provisor.events.wakeup import Wakeup
from provisor.storage.event_log import DEFAULT_GAP_GRACE_SECONDS, latest_seq, read_events
from provisor.storage.faults import OutageLog
from provisor.storage.handles import AsyncEngine
from provisor.storage.transactions import read_transaction

log = logging.getLogger("provisor.hooks")


def handler_names(event: Event) -> tuple[str, str]:
    """`on_event` and the specific handler, e.g. `on_user_created`, `on_group_member_added`."""
    return "on_event", f"on_{event.resource_type.lower()}_{event.op}"


def _lookup(hooks: Any, name: str) -> Callable[[Event], Any] | None:
    found = hooks.get(name) if isinstance(hooks, Mapping) else getattr(hooks, name, None)
    return found if callable(found) else None


class HookRunner:
    def __init__(
        self,
        engine: AsyncEngine,
        hooks: Any,
        *,
        poll_interval: float = 0.1,
        gap_grace: float = DEFAULT_GAP_GRACE_SECONDS,
    ) -> None:
        self.engine = engine
        self.hooks = hooks
        self.poll_interval = poll_interval
        self.gap_grace = gap_grace
        self.cursor = 0
        self._task: asyncio.Task[None] | None = None
        self._wakeup = Wakeup(poll_interval)

    def wake(self) -> None:
        """Read the log now: this process has just committed events (events/wakeup.py)."""
        self._wakeup.wake()

    async def start(self) -> None:
        async with read_transaction(self.engine) as conn:
            self.cursor = await latest_seq(conn)
        self._task = asyncio.create_task(self._loop(), name="provisor-hooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        outage = OutageLog(log, "hook runner")
        while True:
            self._wakeup.begin_pass()
            try:
                handled = await self.run_once()
                outage.succeeded()
            except Exception as exc:
                outage.failed(exc)
                handled = 0
            if not handled:
                await self._wakeup.idle()

    async def run_once(self) -> int:
        async with read_transaction(self.engine) as conn:
            page = await read_events(conn, self.cursor, 500, gap_grace=self.gap_grace)
        for event in page.events:
            await self.dispatch(event)
        self.cursor = page.next
        return len(page.events)

    async def dispatch(self, event: Event) -> None:
        for name in handler_names(event):
            handler = _lookup(self.hooks, name)
            if handler is None:
                continue
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("hook %s failed for event %s", name, event.id)


class PasswordHook:
    """Hands a password an IdP sent to the host application's `on_password(tenant, user_id,
    password)`, for applications that keep local passwords (docs/events.md).

    Unlike the event hooks it is called in the request, after the write committed: the password
    is in no event and no table, so there is nothing to tail. It is therefore called only by the
    process that served the request, once, and never replayed; a crash in between loses it. A
    hook that raises is logged (by exception type only: its message could quote the password)
    and the request still succeeds, since the IdP's change is already stored.
    """

    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler

    @classmethod
    def of(cls, hooks: Any) -> PasswordHook | None:
        handler = (
            hooks.get("on_password") if isinstance(hooks, Mapping) else getattr(hooks, "on_password", None)
        )
        return cls(handler) if callable(handler) else None

    async def __call__(
        self, tenant_id: str, resource_type: str, resource_id: str, values: dict[str, Any]
    ) -> None:
        password = values.get("password")
        if resource_type != "User" or not isinstance(password, str):
            return
        try:
            result = self.handler(tenant_id, resource_id, password)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            log.error(
                "on_password hook failed for user %s of tenant %s: %s (the password is not retried)",
                resource_id,
                tenant_id,
                type(exc).__name__,
            )
