"""shared/supervise.py: restarts with backoff and a count, Fatal and cancels pass through, and
every task is stopped (pure asyncio, no server)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.backoff import Backoff
from shared.supervise import TASK_RESTARTS, Fatal, run_supervised, supervise

QUICK = Backoff(initial=0.001, maximum=0.01)


def restarts(name: str) -> float:
    return TASK_RESTARTS.labels(name)._value.get()


async def test_a_failing_task_is_started_again_and_counted() -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("boom")

    before = restarts("flaky")
    await asyncio.wait_for(supervise("flaky", flaky, backoff=QUICK), 5)
    assert runs == [0, 1, 2]
    assert restarts("flaky") - before == 2


async def test_fatal_and_cancel_pass_through() -> None:
    async def fatal() -> None:
        raise Fatal("HANPORT_STREAM names a hash")

    before = restarts("fatal")
    with pytest.raises(Fatal, match="names a hash"):
        await asyncio.wait_for(supervise("fatal", fatal, backoff=QUICK), 5)
    assert restarts("fatal") == before

    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervise("forever", forever))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled()


async def test_fatal_stops_every_other_task_even_one_that_swallows_a_cancel() -> None:
    stopped: list[str] = []

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # as redis-py can: a cancel lost
            await asyncio.Event().wait()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.append("stubborn")

    async def fatal() -> None:
        await asyncio.sleep(0.01)
        raise Fatal("cannot go on")

    with pytest.raises(Fatal):
        await asyncio.wait_for(run_supervised({"stubborn": stubborn, "fatal": fatal}), 5)
    assert stopped == ["stubborn"]


async def test_returns_once_every_task_returned_and_the_others_run_on_meanwhile() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("quick")

    async def slower() -> None:
        await asyncio.sleep(0.05)
        done.append("slower")

    await asyncio.wait_for(run_supervised({"quick": quick, "slower": slower}), 5)
    assert done == ["quick", "slower"]
