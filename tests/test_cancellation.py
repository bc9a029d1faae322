"""shared/cancellation.py: a cancel that a library swallowed is still honoured."""

from __future__ import annotations

import asyncio

from shared.cancellation import raise_if_cancelling, stop


async def swallows_one_cancel(rounds: list[str], *, check: bool) -> None:
    """A loop whose 'library call' swallows the first cancel, as redis-py can."""
    swallowed = False
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True  # returns normally, as if the command had answered
        rounds.append("round")
        if check:
            raise_if_cancelling()


async def test_a_swallowed_cancel_is_raised_by_the_next_check() -> None:
    rounds: list[str] = []
    task = asyncio.create_task(swallows_one_cancel(rounds, check=True))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled() and rounds == ["round"]


async def test_without_the_check_one_cancel_is_lost_and_stop_cancels_again() -> None:
    rounds: list[str] = []
    task = asyncio.create_task(swallows_one_cancel(rounds, check=False))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task], timeout=0.1)
    assert not task.done()  # the lost cancel: the loop runs on
    await asyncio.wait_for(stop(task, every=0.05), 5)
    assert task.cancelled() and rounds == ["round"]


async def test_no_cancel_no_raise_and_the_cause_is_kept() -> None:
    raise_if_cancelling()  # not being cancelled: returns
    causes: list[BaseException | None] = []
    cause = ConnectionError("redis-py's view of our cancel")

    async def cancelled_inside() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # as a signal handler would, while a Redis call runs
        try:
            raise_if_cancelling(cause)
        except asyncio.CancelledError as raised:
            causes.append(raised.__cause__)
            raise

    task = asyncio.create_task(cancelled_inside())
    await asyncio.wait([task], timeout=5)
    assert task.cancelled() and causes == [cause]
