"""A request's time budget, as the storage layer sees it.

The HTTP envelope gives every request a deadline (`PROVISOR_REQUEST_TIMEOUT`). Cancelling the
request's task when it passes is safe only while the request has not sent a commit: a commit that
is on its way to the database may still take effect after the client was told "503", and an IdP
that retries then meets a 409 for a user it believes it never made. So the storage layer marks the
span of every commit (`Budget.enter` / `Budget.leave`), and when the deadline passes inside one the
envelope does not cancel the task: it asks the database to abort that commit (`Commit.abort`: a
PostgreSQL CancelRequest), and the request waits for the outcome. Either the database aborted it
(nothing written; the request answers 503 with `Retry-After`) or it had committed first (the
request answers with its success, late). SQLite's commits wait for its lock at most what remains
of the budget (`busy_ms`), so they end by the deadline by themselves.

Outside a request (CLI, background workers) there is no budget, and none of this applies.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from provisor.errors import ScimError

#: Seconds a client is asked to wait before retrying a request the database could not serve.
RETRY_AFTER_SECONDS = 1


class Unavailable(ScimError):
    """503 with `Retry-After`: the database could not do this now, and nothing was written."""

    def __init__(self, detail: str, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(503, detail)
        self.headers = {"Retry-After": str(retry_after)}


class TimedOut(Unavailable):
    """The request's deadline passed before its write took effect (nothing was written)."""

    def __init__(self, limit: float | None = None) -> None:
        after = f" after {limit:g} s" if limit else ""
        super().__init__(f"request timed out{after}; nothing was written")


class Commit:
    """One commit in flight. `attach` names how to abort it once the connection is known;
    `settled` turns true when its outcome is known (an abort after that does nothing)."""

    __slots__ = ("_abort", "aborted", "settled")

    def __init__(self) -> None:
        self._abort: Callable[[], None] | None = None
        self.aborted = False
        self.settled = False

    def attach(self, abort: Callable[[], None]) -> None:
        self._abort = abort
        if self.aborted:
            abort()

    def abort(self) -> None:
        if not self.aborted:
            self.aborted = True
            if self._abort is not None:
                self._abort()


class Budget:
    """One request's deadline and the commits it has in flight (see the module docstring)."""

    __slots__ = ("_cancel", "_commits", "_loop", "committed", "deadline", "expired", "limit")

    def __init__(self, limit: float, cancel: Callable[[], object]) -> None:
        self._loop = asyncio.get_running_loop()
        self.limit = limit
        self.deadline = self._loop.time() + limit
        self._cancel = cancel
        self._commits: list[Commit] = []
        self.expired = False
        self.committed = False

    def remaining(self) -> float:
        return self.deadline - self._loop.time()

    def busy_ms(self, longest: int) -> int:
        """How long a SQLite commit may wait for the write lock: what remains of the budget,
        rounded down to 250 ms steps (so that it rarely changes between requests), at most `longest`."""
        left = int(self.remaining() * 4) * 250
        return max(1, min(longest, left))

    def expire(self) -> None:
        """The deadline passed: cancel the request if it has nothing to lose, else abort its commits."""
        self.expired = True
        if self._commits:
            for commit in list(self._commits):
                commit.abort()
        elif not self.committed:
            self._cancel()

    def enter(self, commit: Commit) -> None:
        """A commit starts. Refused once the deadline has passed (unless the request already
        committed something, which a late failure would misreport)."""
        if self.expired and not self.committed:
            raise TimedOut(self.limit)
        self._commits.append(commit)

    def leave(self, commit: Commit, committed: bool) -> None:
        commit.settled = True
        self._commits.remove(commit)
        if committed:
            self.committed = True


#: The current request's budget (set by the HTTP envelope).
current_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "provisor_budget", default=None
)


@contextmanager
def outside_budget() -> Iterator[None]:
    """For a request's bookkeeping writes (a token's last use, a rate-limit bucket): they are not
    the request's effect, so their commit must not count as one (after which the deadline could
    no longer end the request) and need not be waited for; the deadline may cut them off."""
    token = current_budget.set(None)
    try:
        yield
    finally:
        current_budget.reset(token)
