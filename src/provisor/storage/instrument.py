"""Observers of the statements SQLAlchemy runs: the one hook through which telemetry sees the
database, so that telemetry/ needs no SQLAlchemy (metrics and tracing are observers here).

The hot statements of storage/direct.py go to the driver directly and are not seen.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from provisor.storage.kind import backend


class StatementObserver(Protocol):
    def started(self, statement: str, system: str) -> Any:
        """A statement is sent (`system`: "postgresql" or "sqlite"); returns a token for its end."""

    def ended(self, token: Any, statement: str) -> None:
        """The statement's result is back."""

    def failed(self, token: Any, error: BaseException) -> None:
        """The statement failed (`ended` is not called then)."""


def observe_statements(engine: AsyncEngine, observer: StatementObserver, key: str) -> None:
    """Report every statement run on `engine` to `observer`; once per `key` and engine, so that a
    second call for the same purpose does not count statements twice."""
    sync = engine.sync_engine
    marker = f"_provisor_observed_{key}"
    if getattr(sync, marker, False):
        return
    setattr(sync, marker, True)
    slot = f"_provisor_{key}"
    system = backend(engine).name

    @event.listens_for(sync, "before_cursor_execute")
    def before(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        setattr(context, slot, observer.started(statement, system))

    @event.listens_for(sync, "after_cursor_execute")
    def after(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        token = getattr(context, slot, None)
        if token is not None:
            setattr(context, slot, None)
            observer.ended(token, statement)

    @event.listens_for(sync, "handle_error")
    def failed(exception_context: Any) -> None:
        token = getattr(exception_context.execution_context, slot, None)
        if token is not None:
            setattr(exception_context.execution_context, slot, None)
            observer.failed(token, exception_context.original_exception)
