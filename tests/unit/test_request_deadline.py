"""The envelope's per-request deadline (http/middleware._Deadline): it cancels only what it must,
and tells its own cancellation from anyone else's (a shutdown must stay a shutdown)."""

from __future__ import annotations

import asyncio
import contextlib

from provisor.http.middleware import _Deadline


def test_an_expired_deadline_cancels_the_request_and_owns_the_cancellation() -> None:
    async def request() -> str:
        deadline = _Deadline(0.02)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "timed out" if deadline.caused_cancellation() else "cancelled"
        return "finished"

    assert asyncio.run(request()) == "timed out"


def test_a_disarmed_deadline_never_fires() -> None:
    async def request() -> str:
        deadline = _Deadline(0.02)
        deadline.disarm()  # the response started
        await asyncio.sleep(0.06)
        deadline.disarm()  # twice is harmless
        return "finished"

    assert asyncio.run(request()) == "finished"


def test_someone_elses_cancellation_is_not_the_deadlines() -> None:
    async def request(seen: list[bool]) -> None:
        deadline = _Deadline(5)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append(deadline.caused_cancellation())
            raise

    async def main() -> list[bool]:
        seen: list[bool] = []
        task = asyncio.ensure_future(request(seen))
        await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(main()) == [False]


def test_a_cancellation_on_top_of_an_expiry_stays_a_cancellation() -> None:
    """The deadline fired and, before the request noticed, the server cancelled it too: the request
    must not answer 503 and carry on, it must stop."""

    async def main() -> list[bool]:
        seen: list[bool] = []

        async def wrapped() -> None:
            deadline = _Deadline(0.01)  # registered first, so it fires first
            current = asyncio.current_task()
            assert current is not None
            asyncio.get_running_loop().call_later(0.01, current.cancel)  # and a shutdown at once
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                seen.append(deadline.caused_cancellation())
                raise

        task = asyncio.ensure_future(wrapped())
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(main()) == [False]
