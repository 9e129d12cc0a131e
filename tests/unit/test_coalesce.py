"""storage/coalesce.Batcher without a database: who waits, what goes together, who gets what.

The runners below record each round trip; `gate` holds a round trip open so that later calls
arrive while it is in flight, as they do under load. tests/db/test_coalesce_db.py runs the same
on PostgreSQL and SQLite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from asyncpg.exceptions import DivisionByZeroError
from sqlalchemy.exc import IntegrityError

from provisor.storage.coalesce import Batcher

Row = list[Any]


class Runner:
    """Answers call `{"n": k}` with the rows `[[k]]`; `{"fail": ...}` raises it in the database."""

    def __init__(self) -> None:
        self.trips: list[list[int]] = []
        self.gate: asyncio.Event | None = None

    def rows(self, params: Mapping[str, Any]) -> list[Row]:
        if "fail" in params:
            raise params["fail"]
        return [[params["n"]]]

    async def one(self, params: Mapping[str, Any]) -> list[Row]:
        self.trips.append([params["n"]])
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        return self.rows(params)

    async def many(self, batch: list[Mapping[str, Any]]) -> list[list[Row]]:
        self.trips.append([p["n"] for p in batch])
        await asyncio.sleep(0)
        return [self.rows(p) for p in batch]  # any failure fails the whole batch, as a transaction


async def started(runner: Runner, batcher: Batcher, first: dict[str, Any]) -> asyncio.Task[list[Row]]:
    """A first call, held in flight by the gate."""
    runner.gate = asyncio.Event()
    task = asyncio.ensure_future(batcher.fetch(first))
    await asyncio.sleep(0)
    return task


def test_a_lone_call_is_sent_at_once_alone() -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many)
        assert await batcher.fetch({"n": 1}) == [[1]]
        assert await batcher.fetch({"n": 2}) == [[2]]
        assert runner.trips == [[1], [2]]
        assert (batcher.calls, batcher.batches) == (2, 2)

    asyncio.run(main())


def test_calls_arriving_during_a_round_trip_go_together_and_each_gets_its_rows() -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many)
        first = await started(runner, batcher, {"n": 0})
        rest = [asyncio.ensure_future(batcher.fetch({"n": k})) for k in range(1, 6)]
        await asyncio.sleep(0)
        assert runner.trips == [[0]]  # the others wait for the round trip in flight
        runner.gate.set()  # type: ignore[union-attr]
        assert await first == [[0]]
        assert [await t for t in rest] == [[[k]] for k in range(1, 6)]
        assert runner.trips == [[0], [1, 2, 3, 4, 5]]
        assert (batcher.calls, batcher.batches) == (6, 2)

    asyncio.run(main())


def test_with_gather_pass_the_calls_of_one_pass_go_as_one_batch() -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many, gather_pass=True)
        calls = [asyncio.ensure_future(batcher.fetch({"n": k})) for k in range(4)]
        assert [await c for c in calls] == [[[k]] for k in range(4)]
        assert runner.trips == [[0, 1, 2, 3]]  # the first waited for the pass to end, and led
        assert (batcher.calls, batcher.batches) == (4, 1)
        # A call alone in its pass still goes alone, through `run_one`.
        assert await batcher.fetch({"n": 9}) == [[9]]
        assert runner.trips == [[0, 1, 2, 3], [9]]
        assert (batcher.calls, batcher.batches) == (5, 2)

    asyncio.run(main())


def test_with_gather_pass_a_first_call_cancelled_in_its_pass_lets_the_others_go() -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many, gather_pass=True)
        first = asyncio.ensure_future(batcher.fetch({"n": 0}))
        await asyncio.sleep(0)  # the first is waiting for its pass to end
        rest = [asyncio.ensure_future(batcher.fetch({"n": k})) for k in (1, 2)]
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert [await t for t in rest] == [[[1]], [[2]]]
        assert runner.trips == [[1, 2]]

    asyncio.run(main())


def test_batches_are_bounded_and_sorted_by_the_lock_order() -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many, max_batch=3, lock_order=lambda p: -p["n"])
        first = await started(runner, batcher, {"n": 0})
        rest = [asyncio.ensure_future(batcher.fetch({"n": k})) for k in range(1, 8)]
        await asyncio.sleep(0)
        runner.gate.set()  # type: ignore[union-attr]
        await first
        assert [await t for t in rest] == [[[k]] for k in range(1, 8)]
        # In arrival order, at most three at a time; within a batch, in lock order.
        assert runner.trips == [[0], [3, 2, 1], [6, 5, 4], [7]]

    asyncio.run(main())


def test_a_caller_cancelled_while_waiting_is_not_sent() -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many)
        first = await started(runner, batcher, {"n": 0})
        kept = asyncio.ensure_future(batcher.fetch({"n": 1}))
        dropped = asyncio.ensure_future(batcher.fetch({"n": 2}))
        await asyncio.sleep(0)
        dropped.cancel()
        runner.gate.set()  # type: ignore[union-attr]
        await first
        assert await kept == [[1]]
        with pytest.raises(asyncio.CancelledError):
            await dropped
        assert runner.trips == [[0], [1]]

    asyncio.run(main())


@pytest.mark.parametrize(
    "error",
    [IntegrityError("INSERT", {}, Exception("duplicate key")), DivisionByZeroError("division by zero")],
)
def test_a_batch_the_database_rolled_back_is_run_again_call_by_call(error: Exception) -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many)
        first = await started(runner, batcher, {"n": 0})
        good = [asyncio.ensure_future(batcher.fetch({"n": k})) for k in (1, 3)]
        bad = asyncio.ensure_future(batcher.fetch({"n": 2, "fail": error}))
        await asyncio.sleep(0)
        gate, runner.gate = runner.gate, None  # the retries below are not held
        gate.set()  # type: ignore[union-attr]
        await first
        assert [await t for t in good] == [[[1]], [[3]]]
        with pytest.raises(type(error)):
            await bad
        # The batch failed whole; then each call alone, so only the failing one fails.
        assert runner.trips == [[0], [1, 3, 2], [1], [3], [2]]

    asyncio.run(main())


def test_a_failure_that_may_have_committed_reaches_every_call_unretried() -> None:
    async def main() -> None:
        runner = Runner()
        broken = ConnectionResetError("connection lost")

        async def many(batch: list[Mapping[str, Any]]) -> list[list[Row]]:
            runner.trips.append([p["n"] for p in batch])
            raise broken

        batcher = Batcher(runner.one, many)
        first = await started(runner, batcher, {"n": 0})
        rest = [asyncio.ensure_future(batcher.fetch({"n": k})) for k in (1, 2)]
        await asyncio.sleep(0)
        runner.gate.set()  # type: ignore[union-attr]
        await first
        for task in rest:
            with pytest.raises(ConnectionResetError):
                await task
        assert runner.trips == [[0], [1, 2]]  # never sent again: it may have taken effect

    asyncio.run(main())


def test_close_fails_the_waiting_calls() -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many)
        first = await started(runner, batcher, {"n": 0})
        waiting = asyncio.ensure_future(batcher.fetch({"n": 1}))
        await asyncio.sleep(0)
        batcher.close(RuntimeError("disposed"))
        with pytest.raises(RuntimeError, match="disposed"):
            await waiting
        runner.gate.set()  # type: ignore[union-attr]
        assert await first == [[0]]

    asyncio.run(main())


def test_a_batch_keeps_to_one_key_and_the_others_keep_their_places() -> None:
    async def main() -> None:
        runner = Runner()
        batcher = Batcher(runner.one, runner.many, max_batch=3, same_batch=lambda p: p["n"] % 2)
        first = await started(runner, batcher, {"n": 0})
        rest = [asyncio.ensure_future(batcher.fetch({"n": k})) for k in (1, 2, 3, 4, 5, 7, 6)]
        await asyncio.sleep(0)
        runner.gate.set()  # type: ignore[union-attr]
        await first
        assert [await t for t in rest] == [[[k]] for k in (1, 2, 3, 4, 5, 7, 6)]
        # Odd with odd, even with even, at most three, each kind in arrival order.
        assert runner.trips == [[0], [1, 3, 5], [2, 4, 6], [7]]

    asyncio.run(main())
